-- Run by the postgres image on its first start (an empty data volume): Langfuse's database,
-- beside the app's (POSTGRES_DB=agents). Langfuse migrates it itself.
CREATE DATABASE langfuse;
