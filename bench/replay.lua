-- wrk script: replay pre-signed requests from a file, each thread its own slice, in order.
-- File format: one request per line: METHOD<TAB>PATH?QUERY<TAB>BODY (body may be empty).
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  requests = {}
  local n, total = 0, tonumber(args[2])
  local mine = {}
  for line in io.lines(args[1]) do
    n = n + 1
    if (n - 1) % total == id - 1 then
      local method, path, body = line:match("^(%u+)\t([^\t]*)\t(.*)$")
      table.insert(mine, wrk.format(method, path, {["Content-Type"] = "application/json"}, body ~= "" and body or nil))
    end
  end
  requests, index = mine, 0
end

function request()
  index = index + 1
  if index > #requests then
    index = 1  -- past the end: requests repeat (replays), reported by the runner
  end
  return requests[index]
end
