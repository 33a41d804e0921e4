-- Shared by every script of a shard (prepended to each). All keys of a shard start
-- with the prefix P, which contains a Redis Cluster hash tag, so one script only
-- ever touches one slot. KEYS[1] is P .. "meta" (it routes the call in a cluster).
--
-- Layout under P:
--   meta          hash: capacity, capacity_bytes, ring, leaves, next_leaf, transitions,
--                 segments, bytes, frames, and counters (*_total)
--   tree, ctree   strings of 2 * leaves little-endian doubles: sum trees over the leaf
--                 ring, of priority mass (p + eps)^alpha and of live transitions (1)
--   owners        zset: segment id -> first leaf of its contiguous leaf range
--   seginfo       hash: segment id -> "first_leaf length bytes"
--   fifo          list: segment ids, oldest first
--   seg:<id>      StoredSegment protobuf; fl:<id> its frame hashes (32 hex chars each)
--   rz:<id>       ReanalysedTargets protobuf, when reanalyze refreshed it
--   rc            hash: frame hash -> references from stored segments
--   f:<hash>      a frame blob
--   seen          zset: ids of evicted segments (tombstones: a re-send stays a no-op)
local P = ARGV[1]
local META = P .. 'meta'
local HASH_CHARS = 32
local TOMBSTONES = 100000
-- A shard without its meta hash was restarted empty (no persistence) or flushed: every
-- script but init refuses, so the store re-creates the bookkeeping before writing into it
-- (with none, capacity would read as 0 and each insert would evict the one before).
local UNINITIALISED = redis.call('EXISTS', META) == 0
local NOINIT = 'NOINIT shard ' .. P .. ' has no bookkeeping (restarted empty?)'

local function meta_number(field)
  return tonumber(redis.call('HGET', META, field) or '0')
end

local function tree_node(key, node)
  return (struct.unpack('<d', redis.call('GETRANGE', key, node * 8, node * 8 + 7)))
end

-- Set leaves [a, b] to the packed doubles `packed`, then recompute their ancestors
-- level by level from the children (no running deltas, so no drift).
local function tree_set_range(key, leaves, a, b, packed)
  redis.call('SETRANGE', key, (leaves + a) * 8, packed)
  local lo, hi = leaves + a, leaves + b
  while lo > 1 do
    local plo, phi = math.floor(lo / 2), math.floor(hi / 2)
    local children = redis.call('GETRANGE', key, plo * 16, phi * 16 + 15)
    local sums = {}
    for i = 0, phi - plo do
      local left = struct.unpack('<d', children, i * 16 + 1)
      local right = struct.unpack('<d', children, i * 16 + 9)
      sums[#sums + 1] = struct.pack('<d', left + right)
    end
    redis.call('SETRANGE', key, plo * 8, table.concat(sums))
    lo, hi = plo, phi
  end
end

-- Set scattered leaves ({leaf, packed double} pairs, as update does), then recompute
-- their ancestors level by level, each parent once however many of its leaves changed.
local function tree_set_leaves(key, leaves, updates)
  local dirty = {}
  for _, update in ipairs(updates) do
    redis.call('SETRANGE', key, (leaves + update[1]) * 8, update[2])
    dirty[math.floor((leaves + update[1]) / 2)] = true
  end
  while next(dirty) do
    local parents = {}
    for node in pairs(dirty) do
      local children = redis.call('GETRANGE', key, node * 16, node * 16 + 15)
      local sum = struct.unpack('<d', children, 1) + struct.unpack('<d', children, 9)
      redis.call('SETRANGE', key, node * 8, struct.pack('<d', sum))
      if node > 1 then parents[math.floor(node / 2)] = true end
    end
    dirty = parents
  end
end

local function repeat_double(value, count)
  return string.rep(struct.pack('<d', value), count)
end

local function segment_info(id)
  local info = redis.call('HGET', P .. 'seginfo', id)
  if not info then return nil end
  local first, length, bytes = string.match(info, '^(%d+) (%d+) (%d+)$')
  return tonumber(first), tonumber(length), tonumber(bytes)
end

-- Remove the oldest segment: its leaves, its references (frames reaching zero are
-- deleted) and its keys. Returns false when the shard holds no segment.
local function evict_oldest()
  local id = redis.call('LPOP', P .. 'fifo')
  if not id then return false end
  local leaves = meta_number('leaves')
  local first, length, bytes = segment_info(id)
  tree_set_range(P .. 'tree', leaves, first, first + length - 1, repeat_double(0, length))
  tree_set_range(P .. 'ctree', leaves, first, first + length - 1, repeat_double(0, length))
  redis.call('ZREM', P .. 'owners', id)
  redis.call('HDEL', P .. 'seginfo', id)
  local frame_list = redis.call('GET', P .. 'fl:' .. id) or ''
  local freed, deleted = bytes, 0
  for i = 1, #frame_list, HASH_CHARS do
    local hash = string.sub(frame_list, i, i + HASH_CHARS - 1)
    if redis.call('HINCRBY', P .. 'rc', hash, -1) <= 0 then
      redis.call('HDEL', P .. 'rc', hash)
      freed = freed + redis.call('STRLEN', P .. 'f:' .. hash)
      redis.call('DEL', P .. 'f:' .. hash)
      deleted = deleted + 1
    end
  end
  freed = freed + redis.call('STRLEN', P .. 'rz:' .. id)
  redis.call('DEL', P .. 'seg:' .. id, P .. 'fl:' .. id, P .. 'rz:' .. id)
  redis.call('HDEL', P .. 'rzversion', id)
  redis.call('HINCRBY', META, 'transitions', 0 - length)
  redis.call('HINCRBY', META, 'segments', -1)
  redis.call('HINCRBY', META, 'bytes', 0 - freed)
  redis.call('HINCRBY', META, 'frames', 0 - deleted)
  redis.call('HINCRBY', META, 'evicted_segments_total', 1)
  redis.call('HINCRBY', META, 'evicted_transitions_total', length)
  redis.call('ZADD', P .. 'seen', redis.call('HINCRBY', META, 'tombstone_serial', 1), id)
  redis.call('ZREMRANGEBYRANK', P .. 'seen', 0, -(TOMBSTONES + 1))
  return true
end
