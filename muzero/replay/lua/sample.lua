-- ARGV: P, "uniform" or "priority", "count" (add the draws to the sampled total) or "",
-- then uniforms u in [0, 1), one per draw.
-- Returns {total mass (string), transitions, id1, position1, mass1, id2, ...}; a
-- draw that lands on a zero-mass leaf (float rounding) has mass "0": redraw it.
local key = ARGV[2] == 'uniform' and (P .. 'ctree') or (P .. 'tree')
local leaves = meta_number('leaves')
local total = tree_node(key, 1)
local out = {tostring(total), meta_number('transitions')}
if total <= 0 then return out end
for i = 4, #ARGV do
  local target = tonumber(ARGV[i]) * total
  local node = 1
  while node < leaves do
    local pair = redis.call('GETRANGE', key, node * 16, node * 16 + 15)
    local left = struct.unpack('<d', pair, 1)
    local right = struct.unpack('<d', pair, 9)
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
    out[#out + 1] = ''; out[#out + 1] = 0; out[#out + 1] = '0'
  else
    out[#out + 1] = owner[1]
    out[#out + 1] = leaf - tonumber(owner[2])
    out[#out + 1] = tostring(tree_node(P .. 'tree', node))
  end
end
if ARGV[3] == 'count' then redis.call('HINCRBY', META, 'sampled_transitions_total', #ARGV - 3) end
return out
