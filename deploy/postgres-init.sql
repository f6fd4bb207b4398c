-- Run once by the postgres image on an empty volume (docker-compose): the
-- projector's database, apart from the gateway's target database, so that
-- nobody who reaches the target through the proxy reaches the projection.
CREATE DATABASE projection;
