-- GET scenarios (metadata, content, listing): a constant request.
--
-- The URL and the Authorization header come from the wrk command line
-- (-H "Authorization: Bearer ..."), so wrk sends one pre-built request and
-- this script only adds the JSON summary printed by done().

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
