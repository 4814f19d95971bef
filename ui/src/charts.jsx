// Hand-written SVG charts. Each is a <figure> with an SVG (role="img",
// <title>, <desc>) and the same numbers as a table under "Numbers".
// Colours come from CSS classes (no style attributes: CSP style-src 'self').

function nice(max) {
  if (max <= 5) return 5;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

function Numbers({ head, rows, label }) {
  return (
    <details class="numbers">
      <summary>Numbers{label ? ` (${label})` : ''}</summary>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              {head.map((h) => (
                <th scope="col" key={h}>
                  {h}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((r, i) => (
              <tr key={i}>
                {r.map((c, j) => (j === 0 ? <th scope="row" key={j}>{c}</th> : <td key={j}>{c}</td>))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}

/** Horizontal bars: data = [{label, value, cls}] */
export function HBarChart({ id, title, data, unit = '', empty = 'No data.' }) {
  const total = data.reduce((a, d) => a + d.value, 0);
  const max = Math.max(1, ...data.map((d) => d.value));
  const rowH = 30;
  const labelW = 170;
  const width = 560;
  const barW = width - labelW - 70;
  const height = Math.max(1, data.length) * rowH + 6;
  const desc = data.map((d) => `${d.label}: ${d.value}${unit}`).join(', ') || empty;
  return (
    <figure class="chart" data-chart={id} data-total={total}>
      <figcaption>{title}</figcaption>
      {data.length === 0 ? (
        <p class="muted">{empty}</p>
      ) : (
        <svg
          role="img"
          aria-labelledby={`${id}-t ${id}-d`}
          viewBox={`0 0 ${width} ${height}`}
          width="100%"
          preserveAspectRatio="xMinYMin meet"
        >
          <title id={`${id}-t`}>{title}</title>
          <desc id={`${id}-d`}>{desc}</desc>
          {data.map((d, i) => {
            const w = d.value === 0 ? 0 : Math.max(2, (d.value / max) * barW);
            const y = i * rowH + 4;
            return (
              <g key={d.label} class="bar-row">
                <text x={labelW - 8} y={y + 17} text-anchor="end" class="axis-label">
                  {d.label}
                </text>
                <rect x={labelW} y={y} width={barW} height={rowH - 8} class="track" rx="3" />
                <rect
                  x={labelW}
                  y={y}
                  width={w}
                  height={rowH - 8}
                  rx="3"
                  class={`bar ${d.cls || 'c1'}`}
                  data-value={d.value}
                />
                <text x={labelW + barW + 8} y={y + 17} class="value-label">
                  {d.value}
                  {unit}
                </text>
              </g>
            );
          })}
        </svg>
      )}
      <Numbers head={['', 'count']} rows={data.map((d) => [d.label, d.value])} label={title} />
    </figure>
  );
}

/** Columns over days: data = [{date, count}] */
export function ColumnChart({ id, title, data, xLabel = 'day' }) {
  const width = 560;
  const height = 190;
  const left = 36;
  const bottom = 28;
  const top = 10;
  const plotW = width - left - 8;
  const plotH = height - top - bottom;
  const max = nice(Math.max(1, ...data.map((d) => d.count)));
  const step = plotW / Math.max(1, data.length);
  const total = data.reduce((a, d) => a + d.count, 0);
  const nonZero = data.filter((d) => d.count > 0);
  const desc =
    `${total} certificates expire in the next ${data.length} days` +
    (nonZero.length ? `: ${nonZero.map((d) => `${d.date} ${d.count}`).join(', ')}` : '.');
  const ticks = [0, max / 2, max];
  return (
    <figure class="chart" data-chart={id} data-total={total}>
      <figcaption>{title}</figcaption>
      <svg role="img" aria-labelledby={`${id}-t ${id}-d`} viewBox={`0 0 ${width} ${height}`} width="100%">
        <title id={`${id}-t`}>{title}</title>
        <desc id={`${id}-d`}>{desc}</desc>
        {ticks.map((t) => {
          const y = top + plotH - (t / max) * plotH;
          return (
            <g key={t}>
              <line x1={left} x2={width - 8} y1={y} y2={y} class="grid" />
              <text x={left - 6} y={y + 4} text-anchor="end" class="axis-label">
                {Number.isInteger(t) ? t : t.toFixed(1)}
              </text>
            </g>
          );
        })}
        {data.map((d, i) => {
          const h = d.count === 0 ? 0 : Math.max(2, (d.count / max) * plotH);
          return (
            <rect
              key={d.date}
              x={left + i * step + step * 0.15}
              y={top + plotH - h}
              width={Math.max(1, step * 0.7)}
              height={h}
              class="bar c1"
              data-value={d.count}
            />
          );
        })}
        {data.map((d, i) =>
          i % 15 === 0 ? (
            <text key={`l${d.date}`} x={left + i * step} y={height - 8} class="axis-label">
              {d.date.slice(5)}
            </text>
          ) : null,
        )}
      </svg>
      <Numbers head={[xLabel, 'expiring']} rows={nonZero.map((d) => [d.date, d.count])} label={`${total} in total`} />
    </figure>
  );
}

/** Lines over time: points = [{t (unix), [series]: n}], series = [{key, label, cls}] */
export function LineChart({ id, title, points, series, width = 560, height = 210 }) {
  const left = 36;
  const right = 8;
  const top = 10;
  const bottom = 28;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const max = nice(Math.max(1, ...points.flatMap((p) => series.map((s) => p[s.key] || 0))));
  const n = Math.max(1, points.length - 1);
  const x = (i) => left + (i / n) * plotW;
  const y = (v) => top + plotH - (v / max) * plotH;
  const totals = series.map((s) => points.reduce((a, p) => a + (p[s.key] || 0), 0));
  const desc = series.map((s, i) => `${s.label}: ${totals[i]} in the last ${points.length} minutes`).join(', ');
  const labelAt = points.length > 20 ? [0, Math.floor(n / 2), n] : [0, Math.floor(n / 3), Math.floor((2 * n) / 3), n];
  const hhmm = (t) => new Date(t * 1000).toISOString().slice(11, 16);
  const ticks = [0, max / 2, max];
  return (
    <figure class="chart" data-chart={id} data-total={totals.reduce((a, b) => a + b, 0)}>
      <figcaption>{title}</figcaption>
      <ul class="legend" aria-hidden="true">
        {series.map((s, i) => (
          <li key={s.key}>
            <svg width="22" height="10" viewBox="0 0 22 10">
              <line x1="1" x2="21" y1="5" y2="5" class={`line ${s.cls}`} />
            </svg>
            {s.label} <span class="muted">({totals[i]})</span>
          </li>
        ))}
      </ul>
      <svg role="img" aria-labelledby={`${id}-t ${id}-d`} viewBox={`0 0 ${width} ${height}`} width="100%">
        <title id={`${id}-t`}>{title}</title>
        <desc id={`${id}-d`}>{desc}</desc>
        {ticks.map((t) => (
          <g key={t}>
            <line x1={left} x2={width - right} y1={y(t)} y2={y(t)} class="grid" />
            <text x={left - 6} y={y(t) + 4} text-anchor="end" class="axis-label">
              {Number.isInteger(t) ? t : t.toFixed(1)}
            </text>
          </g>
        ))}
        {series.map((s) => (
          <polyline
            key={s.key}
            class={`line ${s.cls}`}
            data-series={s.key}
            fill="none"
            points={points.map((p, i) => `${x(i).toFixed(1)},${y(p[s.key] || 0).toFixed(1)}`).join(' ')}
          />
        ))}
        {points.length
          ? labelAt.map((i) => (
              <text
                key={`x${i}`}
                x={x(i)}
                y={height - 8}
                text-anchor={i === 0 ? 'start' : i === n ? 'end' : 'middle'}
                class="axis-label"
              >
                {hhmm(points[i].t)} UTC
              </text>
            ))
          : null}
      </svg>
      <Numbers
        head={['minute (UTC)', ...series.map((s) => s.label)]}
        rows={points.filter((p) => series.some((s) => p[s.key])).map((p) => [hhmm(p.t), ...series.map((s) => p[s.key] || 0)])}
        label="minutes with tokens"
      />
    </figure>
  );
}
