-- certbound store, version 6: a deleted client holds no credential.
--
-- `certbound apply` used to delete a client by clearing its TLS subject only:
-- a client registered by TLS SAN or pinned thumbprint kept that value in its
-- revoked row, and the unique indexes then refused it to every later client.
-- Deleting a client clears every credential now (as `certbound client delete`
-- always did); this clears what earlier deletions left behind. Revoked rows
-- authenticate nothing either way.
UPDATE clients SET tls_subject = NULL, tls_san = NULL, thumbprint = NULL
 WHERE status = 'revoked';
