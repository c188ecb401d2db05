-- The fleet's pace of Kombo API requests (KOMBO_MAX_RPS). Kombo limits requests per API key
-- across every integration, so every worker reserves the slot of each request it sends in this
-- one row: the cap holds however many workers run. The key itself is never stored.
create table kombo.request_pacing (
    budget    text        primary key, -- 'kombo-api': the one API key of a deployment
    next_slot timestamptz not null     -- the earliest time the next request may be sent
);

