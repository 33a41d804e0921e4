-- ARGV: P, "check" or "write", then id, position, packed mass (8 bytes) triples.
-- "check" only validates; "write" sets the masses. Returns {updated, stale} (stale: segments
-- evicted since they were sampled), or an error naming the first bad position (then nothing
-- is written). The store checks every shard before writing any, so a refusal is atomic.
if UNINITIALISED then return redis.error_reply(NOINIT) end
local leaves = meta_number('leaves')
local updates = {}
for i = 3, #ARGV, 3 do
  local id, position = ARGV[i], tonumber(ARGV[i + 1])
  local first, length = segment_info(id)
  if first then
    if position < 0 or position >= length then
      return redis.error_reply('POSITION positions: ' .. position .. ' is not an owned position of segment ' ..
        id .. ' (length ' .. length .. ')')
    end
    updates[#updates + 1] = {first + position, ARGV[i + 2]}
  end
end
local stale = (#ARGV - 2) / 3 - #updates
if ARGV[2] == 'check' then return {#updates, stale} end
tree_set_leaves(P .. 'tree', leaves, updates)
redis.call('HINCRBY', META, 'priority_updates_total', #updates)
redis.call('HINCRBY', META, 'stale_priority_updates_total', stale)
return {#updates, stale}
