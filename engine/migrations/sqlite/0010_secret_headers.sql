-- Headers an endpoint marks secret besides those whose names suggest a
-- credential: a JSON array of lowercased names (the values stay in the sealed
-- `headers` column).

ALTER TABLE endpoints ADD COLUMN secret_headers TEXT;
