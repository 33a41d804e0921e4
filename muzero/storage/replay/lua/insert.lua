-- ARGV: P, id, segment blob, frame list (hex hashes), length, packed leaf masses,
--       then hash, blob pairs for frames the shard may not hold yet.
-- Returns {1, evicted} stored, {0, 0} duplicate, or {-1, hash...} frames missing
-- (nothing written; the caller re-sends with those frames).
if UNINITIALISED then return redis.error_reply(NOINIT) end
local id, blob, frame_list, length, masses = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
if redis.call('EXISTS', P .. 'seg:' .. id) == 1 or redis.call('ZSCORE', P .. 'seen', id) then
  redis.call('HINCRBY', META, 'duplicate_inserts_total', 1)
  return {0, 0}
end
local provided = {}
for i = 7, #ARGV, 2 do provided[ARGV[i]] = ARGV[i + 1] end

-- Check everything before the first write: a script that fails halfway keeps its writes.
local unique, missing = {}, {}
for i = 1, #frame_list, HASH_CHARS do
  local hash = string.sub(frame_list, i, i + HASH_CHARS - 1)
  if not unique[hash] then
    unique[hash] = true
    if not provided[hash] and redis.call('HEXISTS', P .. 'rc', hash) == 0 then missing[#missing + 1] = hash end
  end
end
if #missing > 0 then return {-1, unpack(missing)} end

-- References first: the frames this segment uses survive the evictions below.
local new_bytes, new_frames = #blob + #frame_list, 0
for hash in pairs(unique) do
  if redis.call('HEXISTS', P .. 'rc', hash) == 0 then
    redis.call('SET', P .. 'f:' .. hash, provided[hash])
    new_bytes = new_bytes + #provided[hash]
    new_frames = new_frames + 1
  end
end
for i = 1, #frame_list, HASH_CHARS do
  redis.call('HINCRBY', P .. 'rc', string.sub(frame_list, i, i + HASH_CHARS - 1), 1)
end
local frame_bytes = new_bytes - #blob - #frame_list
redis.call('HINCRBY', META, 'bytes', new_bytes)
redis.call('HINCRBY', META, 'frames', new_frames)

-- A contiguous leaf range in the ring; evict oldest-first until the capacities
-- hold and the range is free (oldest-first frees the ring in order).
local capacity, capacity_bytes = meta_number('capacity'), meta_number('capacity_bytes')
local ring, leaves = meta_number('ring'), meta_number('leaves')
local first = meta_number('next_leaf')
if first + length > ring then first = 0 end
local function range_busy()
  local owner = redis.call('ZREVRANGEBYSCORE', P .. 'owners', first + length - 1, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #owner == 0 then return false end
  local start, span = segment_info(owner[1])
  return start + span > first
end
local evicted = 0
while meta_number('transitions') + length > capacity
    or (capacity_bytes > 0 and meta_number('bytes') > capacity_bytes and meta_number('segments') > 0)
    or range_busy() do
  if not evict_oldest() then break end
  evicted = evicted + 1
end

tree_set_range(P .. 'tree', leaves, first, first + length - 1, masses)
tree_set_range(P .. 'ctree', leaves, first, first + length - 1, repeat_double(1, length))
redis.call('ZADD', P .. 'owners', first, id)
redis.call('HSET', P .. 'seginfo', id, first .. ' ' .. length .. ' ' .. (#blob + #frame_list))
redis.call('RPUSH', P .. 'fifo', id)
redis.call('SET', P .. 'seg:' .. id, blob)
redis.call('SET', P .. 'fl:' .. id, frame_list)
redis.call('HSET', META, 'next_leaf', first + length)
redis.call('HINCRBY', META, 'transitions', length)
redis.call('HINCRBY', META, 'segments', 1)
redis.call('HINCRBY', META, 'inserted_segments_total', 1)
redis.call('HINCRBY', META, 'inserted_transitions_total', length)
redis.call('HINCRBY', META, 'inserted_frame_bytes_total', frame_bytes)
redis.call('HINCRBY', META, 'referenced_frames_total', #frame_list / HASH_CHARS)
redis.call('HINCRBY', META, 'new_frames_total', new_frames)
return {1, evicted}
