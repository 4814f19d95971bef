-- certbound store, version 7: the public key of every provisioning claim.
--
-- Every device of a batch holds its claim's key, so a device certificate for
-- that key could be used by all of them. First enrollment by claim refuses
-- the claim's own key (the claim certificate is at hand then); re-enrollment
-- refuses the key of every claim, which needs the keys stored. Claims made
-- before this version get their key recorded at their next enrollment.
ALTER TABLE claims ADD COLUMN public_key BLOB;  -- SEC1 uncompressed P-256 point of the claim certificate's key
CREATE INDEX claims_public_key ON claims(public_key) WHERE public_key IS NOT NULL;
