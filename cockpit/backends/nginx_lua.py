"""nginx's "lua" mode for the front door (backends/nginx_front.py): members in a shared dict, a
balancer that picks one per request, and an admin location that replaces a service's list
without a reload (what nginx-upsync-module does; Debian's nginx has the Lua module instead)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

DICT = "cockpit_peers"


def lua_http(services: Sequence[str], admin_port: int, ident: Callable[[str], str]) -> str:
    """The http-block part of "lua" mode: the shared dict, the program, an upstream per service
    whose balancer picks from the dict, and the admin server that replaces a service's members."""
    table = ", ".join(f'["{s}"] = true' for s in services)
    upstreams = "".join(f"""    upstream cockpit_{ident(s)} {{
        server 0.0.0.1;  # a placeholder: the balancer below picks the member
        balancer_by_lua_block {{ require("cockpit_front").balance("{s}") }}
    }}
""" for s in services)
    return f"""    lua_package_path "/usr/share/lua/5.1/?.lua;;";
    lua_shared_dict {DICT} 4m;
    init_by_lua_block {{
        require "resty.core"
{LUA}
        M.services = {{ {table} }}
        package.loaded.cockpit_front = M
    }}
{upstreams}    server {{
        listen 127.0.0.1:{admin_port};
        location ~ ^/upstreams/([A-Za-z0-9][A-Za-z0-9_.-]*)$ {{
            client_max_body_size 256k;
            client_body_buffer_size 256k;
            content_by_lua_block {{ require("cockpit_front").admin(ngx.var[1]) }}
        }}
        location / {{ return 404 "the admin location is /upstreams/<service>\\n"; }}
    }}
"""


# The Lua side of "lua" mode. Members are kept in the shared dict as lines of
# "address port weight max_fails fail_timeout down backup"; each worker parses a service's list
# once per change. Debian's Lua module comes without cjson, hence the small JSON reader.
LUA = r"""
        local M = {}
        local shared = ngx.shared.cockpit_peers
        local balancer = require "ngx.balancer"
        local MAX_MEMBERS = 1000
        local cache, fails = {}, {}  -- per worker: parsed lists; failures per member

        local function decode(s)
            local pos, depth = 1, 0
            local function fail(what) error("the body is not JSON: " .. what .. " at byte " .. pos, 0) end
            local function skip() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
            local escapes = {['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t"}
            local value
            local function str()
                local out = {}
                pos = pos + 1
                while true do
                    local i = s:find('["\\]', pos)
                    if not i then fail("an unterminated string") end
                    out[#out + 1] = s:sub(pos, i - 1)
                    if s:sub(i, i) == '"' then pos = i + 1; return table.concat(out) end
                    local e = escapes[s:sub(i + 1, i + 1)]
                    if not e then pos = i; fail("an escape this front does not read") end
                    out[#out + 1] = e
                    pos = i + 2
                end
            end
            local function items(close, item)
                depth = depth + 1
                if depth > 8 then fail("nesting too deep") end
                pos = pos + 1; skip()
                if s:sub(pos, pos) == close then pos = pos + 1; depth = depth - 1; return end
                while true do
                    item(); skip()
                    local c = s:sub(pos, pos)
                    if c == close then pos = pos + 1; depth = depth - 1; return end
                    if c ~= "," then fail("a missing ','") end
                    pos = pos + 1; skip()
                end
            end
            local words = {["true"] = true, ["false"] = false, null = ngx.null}
            value = function()
                skip()
                local c = s:sub(pos, pos)
                if c == "[" then
                    local t = {}
                    items("]", function() t[#t + 1] = value() end)
                    return t
                elseif c == '"' then
                    return str()
                elseif c == string.char(123) then
                    local t = {}
                    items(string.char(125), function()
                        if s:sub(pos, pos) ~= '"' then fail("a key that is not a string") end
                        local k = str(); skip()
                        if s:sub(pos, pos) ~= ":" then fail("a missing ':'") end
                        pos = pos + 1
                        t[k] = value()
                    end)
                    return t
                end
                for word, v in pairs(words) do
                    if s:sub(pos, pos + #word - 1) == word then pos = pos + #word; return v end
                end
                local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
                if not num then fail("an unexpected character") end
                pos = pos + #num
                return tonumber(num) or fail("a bad number")
            end
            local v = value(); skip()
            if pos <= #s then fail("text after the value") end
            return v
        end

        local function to_lines(doc)
            if type(doc) ~= "table" or type(doc.members) ~= "table" then
                error("the body is not an object with a members list", 0)
            end
            if #doc.members > MAX_MEMBERS then error("more than " .. MAX_MEMBERS .. " members", 0) end
            local lines, seen = {}, {}
            for i, m in ipairs(doc.members) do
                local where = "member " .. i
                if type(m) ~= "table" then error(where .. ": not an object", 0) end
                local a = m.address
                if type(a) ~= "string" or not (a:find("^%d+%.%d+%.%d+%.%d+$") or
                        (a:find(":", 1, true) and a:find("^[%x:.]+$"))) then
                    error(where .. ": the address is not an IP address", 0)
                end
                local function num(k, default, lo, hi)
                    local v = m[k]
                    if v == nil or v == ngx.null then return default end
                    if type(v) ~= "number" or v ~= math.floor(v) or v < lo or v > hi then
                        error(where .. ": " .. k .. " is not a whole number from " .. lo .. " to " .. hi, 0)
                    end
                    return v
                end
                local function flag(k)
                    local v = m[k]
                    if v == nil or v == ngx.null or v == false or v == 0 then return 0 end
                    if v == true or v == 1 then return 1 end
                    error(where .. ": " .. k .. " is not true or false", 0)
                end
                local port = num("port", nil, 1, 65535)
                if not port then error(where .. ": no port", 0) end
                local key = a .. ":" .. port
                if seen[key] then error(where .. ": " .. key .. " is listed twice", 0) end
                seen[key] = true
                lines[#lines + 1] = string.format("%s %d %d %d %d %d %d", a, port, num("weight", 1, 1, 1000),
                    num("max_fails", 2, 0, 1000), num("fail_timeout", 10, 0, 86400), flag("down"), flag("backup"))
            end
            return table.concat(lines, "\n")
        end

        local function peers(svc)
            local raw = shared:get(svc) or ""
            local c = cache[svc]
            if c and c.raw == raw then return c end
            c = {raw = raw, all = {}, primary = {}, backup = {}}
            for line in raw:gmatch("[^\n]+") do
                local a, p, w, mf, ft, d, b = line:match("^(%S+) (%d+) (%d+) (%d+) (%d+) (%d) (%d)$")
                local m = {address = a, port = tonumber(p), weight = tonumber(w), max_fails = tonumber(mf),
                           fail_timeout = tonumber(ft), down = d == "1", backup = b == "1", key = a .. ":" .. p, cw = 0}
                c.all[#c.all + 1] = m
                if not m.down then table.insert(m.backup and c.backup or c.primary, m) end
            end
            cache[svc] = c
            return c
        end

        -- nginx's passive health: max_fails failures, each within fail_timeout of the last,
        -- put a member aside for fail_timeout; max_fails 0 never does.
        local function usable(m, now)
            local f = fails[m.key]
            return not f or m.max_fails == 0 or f.n < m.max_fails or now - f.last >= m.fail_timeout
        end
        local function failed(m, now)
            local f = fails[m.key]
            if not f or now - f.last >= m.fail_timeout then f = {n = 0}; fails[m.key] = f end
            f.n = f.n + 1
            f.last = now
        end

        -- nginx's smooth weighted round robin over the members this request has not tried.
        local function pick(list, tried, now, any)
            local best, total = nil, 0
            for _, m in ipairs(list) do
                if not tried[m.key] and (any or usable(m, now)) then
                    m.cw = m.cw + m.weight
                    total = total + m.weight
                    if not best or m.cw > best.cw then best = m end
                end
            end
            if best then best.cw = best.cw - total end
            return best
        end

        function M.balance(svc)
            local ctx, now, c = ngx.ctx, ngx.now(), peers(svc)
            if ctx.cockpit_cur then
                if balancer.get_last_failure() == "failed" then failed(ctx.cockpit_cur, now) end
            else
                ctx.cockpit_tried = {}
                local n = #c.primary + #c.backup
                if n > 1 then balancer.set_more_tries(n - 1) end
            end
            local tried = ctx.cockpit_tried
            -- backups only when no other member is up; all put aside: try them anyway, as nginx does
            local m = pick(c.primary, tried, now) or pick(c.backup, tried, now)
                or pick(c.primary, tried, now, true) or pick(c.backup, tried, now, true)
            if not m then
                ngx.log(ngx.ERR, "cockpit: no member of ", svc, " left to try")
                return ngx.exit(ngx.ERROR)
            end
            tried[m.key] = true
            ctx.cockpit_cur = m
            -- the module parses the host as a URL: an IPv6 address goes in brackets
            local host = m.address:find(":", 1, true) and "[" .. m.address .. "]" or m.address
            local ok, err = balancer.set_current_peer(host, m.port)
            if not ok then
                ngx.log(ngx.ERR, "cockpit: ", svc, " ", m.key, ": ", err)
                return ngx.exit(ngx.ERROR)
            end
        end

        function M.check(svc)
            local c = peers(svc)
            if #c.primary + #c.backup == 0 then
                ngx.status = 503
                ngx.say("no live member for service ", svc)
                return ngx.exit(503)
            end
        end

        local function encode(svc)
            local out = {}
            for _, m in ipairs(peers(svc).all) do
                out[#out + 1] = string.format('"address":"%s","port":%d,"weight":%d,"max_fails":%d,"fail_timeout":%d,'
                    .. '"down":%s,"backup":%s', m.address, m.port, m.weight, m.max_fails, m.fail_timeout,
                    tostring(m.down), tostring(m.backup))
            end
            local open, close = string.char(123), string.char(125)
            for i, item in ipairs(out) do out[i] = open .. item .. close end
            return open .. '"service":"' .. svc .. '","members":[' .. table.concat(out, ",") .. "]" .. close
        end

        local function reply(status, body, ctype)
            ngx.status = status
            ngx.header["Content-Type"] = ctype or "text/plain"
            ngx.say(body)
            return ngx.exit(ngx.HTTP_OK)
        end

        function M.admin(svc)
            if not M.services[svc] then return reply(404, "no service " .. svc .. " in this front") end
            local method = ngx.req.get_method()
            if method == "POST" or method == "PUT" then
                ngx.req.read_body()
                local body = ngx.req.get_body_data()
                if not body then return reply(400, "the body is empty or too large") end
                local ok, lines = pcall(function() return to_lines(decode(body)) end)
                if not ok then return reply(400, lines) end
                local stored, err = shared:set(svc, lines)
                if not stored then return reply(507, "the members do not fit: " .. err) end
            elseif method ~= "GET" then
                return reply(405, "GET, POST or PUT")
            end
            return reply(200, encode(svc), "application/json")
        end
"""
