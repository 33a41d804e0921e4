-- ARGV: P. Checks one shard's invariants in one atomic pass (it blocks the shard for
-- a time proportional to what it holds). Returns a list of problems, empty if clean:
-- every stored segment's keys, leaves and frames exist; every frame's reference count
-- equals the references to it; no frame is unreferenced; the trees and counters agree.
local problems = {}
local function problem(text) problems[#problems + 1] = text end
if redis.call('EXISTS', META) == 0 then return problems end
local leaves = meta_number('leaves')
local ids = redis.call('LRANGE', P .. 'fifo', 0, -1)
local references, transitions, bytes = {}, 0, 0
local live = {}
for _, id in ipairs(ids) do
  local first, length, seg_bytes = segment_info(id)
  if not first then
    problem('segment ' .. id .. ': in fifo but has no seginfo')
  else
    transitions = transitions + length
    bytes = bytes + seg_bytes + redis.call('STRLEN', P .. 'rz:' .. id)
    if tonumber(redis.call('ZSCORE', P .. 'owners', id) or '-1') ~= first then
      problem('segment ' .. id .. ': owners does not hold its first leaf ' .. first)
    end
    for leaf = first, first + length - 1 do
      if live[leaf] then problem('leaf ' .. leaf .. ': owned by ' .. live[leaf] .. ' and ' .. id) end
      live[leaf] = id
    end
    if redis.call('EXISTS', P .. 'seg:' .. id) == 0 then problem('segment ' .. id .. ': seg key missing') end
    local frame_list = redis.call('GET', P .. 'fl:' .. id)
    if not frame_list then
      problem('segment ' .. id .. ': frame list missing')
    else
      for i = 1, #frame_list, HASH_CHARS do
        local hash = string.sub(frame_list, i, i + HASH_CHARS - 1)
        references[hash] = (references[hash] or 0) + 1
      end
    end
  end
end
if redis.call('LLEN', P .. 'fifo') ~= redis.call('HLEN', P .. 'seginfo') then
  problem('seginfo holds ' .. redis.call('HLEN', P .. 'seginfo') .. ' segments, fifo ' .. #ids)
end
if redis.call('ZCARD', P .. 'owners') ~= #ids then
  problem('owners holds ' .. redis.call('ZCARD', P .. 'owners') .. ' segments, fifo ' .. #ids)
end
local counts = redis.call('HGETALL', P .. 'rc')
local counted, frames = {}, 0
for i = 1, #counts, 2 do
  local hash, count = counts[i], tonumber(counts[i + 1])
  counted[hash] = true
  frames = frames + 1
  if references[hash] ~= count then
    problem('frame ' .. hash .. ': reference count ' .. count .. ', referenced ' .. tostring(references[hash] or 0) .. ' times')
  end
  local size = redis.call('STRLEN', P .. 'f:' .. hash)
  if size == 0 then problem('frame ' .. hash .. ': referenced but missing') end
  bytes = bytes + size
end
for hash, count in pairs(references) do
  if not counted[hash] then problem('frame ' .. hash .. ': referenced ' .. count .. ' times but not counted') end
end
local cursor = '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', P .. 'f:*', 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    local hash = string.sub(key, #P + 3)
    if not counted[hash] then problem('frame ' .. hash .. ': stored but unreferenced') end
  end
until cursor == '0'
if meta_number('transitions') ~= transitions then
  problem('meta transitions ' .. meta_number('transitions') .. ', segments own ' .. transitions)
end
if meta_number('segments') ~= #ids then problem('meta segments ' .. meta_number('segments') .. ', fifo ' .. #ids) end
if meta_number('frames') ~= frames then problem('meta frames ' .. meta_number('frames') .. ', counted ' .. frames) end
if meta_number('bytes') ~= bytes then problem('meta bytes ' .. meta_number('bytes') .. ', counted ' .. bytes) end
local count_total = tree_node(P .. 'ctree', 1)
if count_total ~= transitions then problem('count tree total ' .. count_total .. ', transitions ' .. transitions) end
local ones = redis.call('GETRANGE', P .. 'ctree', leaves * 8, 2 * leaves * 8 - 1)
local masses = redis.call('GETRANGE', P .. 'tree', leaves * 8, 2 * leaves * 8 - 1)
for leaf = 0, leaves - 1 do
  local value = struct.unpack('<d', ones, leaf * 8 + 1)
  local mass = struct.unpack('<d', masses, leaf * 8 + 1)
  if live[leaf] == nil and mass ~= 0 then problem('leaf ' .. leaf .. ': free but has priority mass ' .. mass) end
  if (value == 1) ~= (live[leaf] ~= nil) or (value ~= 0 and value ~= 1) then
    problem('leaf ' .. leaf .. ': count ' .. value .. ' but ' .. (live[leaf] and 'owned' or 'free'))
  end
end
return problems
