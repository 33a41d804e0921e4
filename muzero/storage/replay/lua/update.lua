-- ARGV: P, then id, position, packed mass (8 bytes) triples.
-- Returns {updated, stale} (stale: segments evicted since they were sampled), or an
-- error naming the first bad position (then nothing is written).
local leaves = meta_number('leaves')
local updates = {}
for i = 2, #ARGV, 3 do
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
tree_set_leaves(P .. 'tree', leaves, updates)
local stale = (#ARGV - 1) / 3 - #updates
redis.call('HINCRBY', META, 'priority_updates_total', #updates)
redis.call('HINCRBY', META, 'stale_priority_updates_total', stale)
return {#updates, stale}
