-- ARGV: P, capacity, capacity_bytes, ring, leaves, layout ("<experiment> <frame shape> <dtype> <actions>")
-- Creates the shard's bookkeeping once; a later call with another layout is refused,
-- so two experiments (or two configs of one) never share keys by accident.
local capacity, capacity_bytes, ring, leaves, layout = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if redis.call('EXISTS', META) == 1 then
  local stored = redis.call('HMGET', META, 'capacity', 'capacity_bytes', 'layout')
  if stored[1] ~= capacity or stored[2] ~= capacity_bytes or stored[3] ~= layout then
    return redis.error_reply('CONFIG shard ' .. P .. ' holds capacity=' .. tostring(stored[1]) ..
      ' capacity_bytes=' .. tostring(stored[2]) .. ' layout=' .. tostring(stored[3]) ..
      '; this store wants capacity=' .. capacity .. ' capacity_bytes=' .. capacity_bytes .. ' layout=' .. layout)
  end
  return 0
end
redis.call('HSET', META, 'capacity', capacity, 'capacity_bytes', capacity_bytes, 'ring', ring, 'leaves', leaves,
  'layout', layout, 'next_leaf', 0, 'transitions', 0, 'segments', 0, 'bytes', 0, 'frames', 0)
-- Zero-filled trees: SETRANGE past the end pads with zero bytes, and 0.0 is all zeros.
redis.call('SETRANGE', P .. 'tree', 2 * tonumber(leaves) * 8 - 1, '\0')
redis.call('SETRANGE', P .. 'ctree', 2 * tonumber(leaves) * 8 - 1, '\0')
return 1
