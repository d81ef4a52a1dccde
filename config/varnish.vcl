vcl 4.1;
# Varnish in front of feeds (the Procfile's web process on 127.0.0.1:8000).
#
# - One cached copy per feed URL: feeds send the same bytes to every client and vary
#   on Accept-Encoding only; Varnish fetches gzip and unzips for clients without it.
# - Stale copies while the origin is down: Varnish takes an object's grace from
#   stale-while-revalidate and ignores stale-if-error, so stock Varnish answers 503 once
#   max-age + stale-while-revalidate have passed. Here objects are kept for their
#   stale-if-error window, and served that stale only while the probe finds the origin
#   sick; while it is healthy, stale-while-revalidate still bounds staleness.
# - The client's address: varnishd itself appends client.ip to X-Forwarded-For before
#   vcl_recv, so the origin never takes a client of this cache for a local one (the
#   operator pages need the token through here). Do not unset it. Host passes without
#   its port (as nginx's $host): one copy per name, and no client can make the origin
#   render once per port. List the public name in FEEDS_ALLOWED_HOSTS or set
#   FEEDS_BASE_URL.
# Tested by tests/test_caches.py with the real varnishd.

import std;

backend feeds {
    .host = "127.0.0.1";
    .port = "8000";
    .probe = {
        .url = "/healthz";
        .interval = 2s;
        .timeout = 1s;
        .window = 3;
        .threshold = 2;
    }
}

sub vcl_recv {
    set req.http.Host = regsub(req.http.Host, ":[0-9]+$", "");
    if (req.restarts == 0) {
        unset req.http.X-Feeds-Revalidate;  # only vcl_hit may ask for a fresh copy
    } elsif (req.http.X-Feeds-Revalidate) {
        set req.grace = 0s;
    }
    if (req.method == "GET" || req.method == "HEAD") {
        # feeds sets no cookies and reads none: a cookie must not make every request a miss
        unset req.http.Cookie;
    }
}

sub vcl_hit {
    # Stale beyond the origin's stale-while-revalidate while the origin answers: fetch now
    # instead of serving the stale copy.
    if (obj.ttl + std.duration(obj.http.X-Feeds-SWR, 0s) < 0s
        && std.healthy(req.backend_hint)) {
        set req.http.X-Feeds-Revalidate = "1";
        return (restart);
    }
}

sub vcl_backend_response {
    # beresp.grace holds stale-while-revalidate here; keep it, then keep the object for
    # the stale-if-error window.
    set beresp.http.X-Feeds-SWR = beresp.grace + "s";
    if (beresp.http.Cache-Control ~ "stale-if-error=[0-9]+") {
        set beresp.grace = std.duration(
            regsub(beresp.http.Cache-Control, "^.*stale-if-error=([0-9]+).*$", "\1s"),
            beresp.grace);
    }
}

sub vcl_deliver {
    unset resp.http.X-Feeds-SWR;
}
