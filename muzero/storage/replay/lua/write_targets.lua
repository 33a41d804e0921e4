-- ARGV: P, id, ReanalysedTargets blob, model version, steps. Returns 1 stored, 0 if the
-- segment is gone (evicted) or already holds targets of this or a newer version (the first
-- write of a version wins, so (id, version) names one set of targets: fronts cache by it).
if UNINITIALISED then return redis.error_reply(NOINIT) end
local id, blob, version = ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('EXISTS', P .. 'seg:' .. id) == 0 then return 0 end
local previous = tonumber(redis.call('HGET', P .. 'rzversion', id) or '-1')
if previous >= version then return 0 end
local old = redis.call('STRLEN', P .. 'rz:' .. id)
redis.call('SET', P .. 'rz:' .. id, blob)
redis.call('HSET', P .. 'rzversion', id, version)
redis.call('HINCRBY', META, 'bytes', #blob - old)
redis.call('HINCRBY', META, 'reanalysed_writes_total', 1)
redis.call('HINCRBY', META, 'reanalysed_transitions_total', tonumber(ARGV[5]))
return 1
