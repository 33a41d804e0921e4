-- ARGV: P, "uniform" or "priority", "count" (add the draws to the sampled total) or "",
-- then uniforms u in [0, 1), one per draw.
-- Returns {total mass (string), transitions, id1, position1, mass1, targets version1, id2, ...}
-- (targets version: of the segment's reanalysed targets, -1 if none); a draw that lands
-- on a zero-mass leaf (float rounding) has mass "0": redraw it.
if UNINITIALISED then return redis.error_reply(NOINIT) end
local key = ARGV[2] == 'uniform' and (P .. 'ctree') or (P .. 'tree')
local leaves = meta_number('leaves')
local total = tree_node(key, 1)
local out = {tostring(total), meta_number('transitions')}
if total <= 0 then return out end
-- The top of the tree (nodes below TOP, 16 KB) is read once for all draws; only the
-- deeper levels cost a GETRANGE per draw.
local TOP = math.min(leaves, 2048)
local top = redis.call('GETRANGE', key, 0, TOP * 8 - 1)
for i = 4, #ARGV do
  local target = tonumber(ARGV[i]) * total
  local node = 1
  while node < leaves do
    local left, right
    if 2 * node + 1 < TOP then
      left = struct.unpack('<d', top, node * 16 + 1)
      right = struct.unpack('<d', top, node * 16 + 9)
    else
      local pair = redis.call('GETRANGE', key, node * 16, node * 16 + 15)
      left = struct.unpack('<d', pair, 1)
      right = struct.unpack('<d', pair, 9)
    end
    if target < left or right <= 0 then
      node = 2 * node
    else
      target = target - left
      node = 2 * node + 1
    end
  end
  local leaf = node - leaves
  local mass = tree_node(key, node)
  local owner = redis.call('ZREVRANGEBYSCORE', P .. 'owners', leaf, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #owner == 0 or mass <= 0 then
    out[#out + 1] = ''; out[#out + 1] = 0; out[#out + 1] = '0'; out[#out + 1] = -1
  else
    out[#out + 1] = owner[1]
    out[#out + 1] = leaf - tonumber(owner[2])
    out[#out + 1] = tostring(tree_node(P .. 'tree', node))
    out[#out + 1] = tonumber(redis.call('HGET', P .. 'rzversion', owner[1]) or '-1')
  end
end
if ARGV[3] == 'count' then redis.call('HINCRBY', META, 'sampled_transitions_total', #ARGV - 3) end
return out
