import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {costReport, renderCost} from '../../../src/ops/cost.js'
import {readLaunchRecords} from '../../../src/ops/launch-records.js'
import {createRunDir, updateMetadata} from '../../../src/tracking/rundir.js'
import {UserError} from '../../../src/util/errors.js'
import type {Instance} from '../../../src/vast/index.js'
import {tempDir} from '../../helpers.js'
import {launchLine} from './run-fixture.js'

export function inst(over: Partial<Instance> & {id: number}): Instance {
  return {
    status: 'running', intendedStatus: 'running', curState: 'running', statusMsg: null, label: null, gpuName: 'RTX 4090', numGpus: 1,
    gpuUtil: 90, gpuTemp: 50, memUsage: 1, diskUsage: 1, diskGb: 64, dphTotal: 0.5, startDate: 0, sshHost: null, sshPort: null,
    publicIp: null, image: null, machineId: null, location: null, uptimeMins: 120, envKeys: [], ...over,
  }
}

const NOW = new Date('2025-03-10T12:00:00Z')

async function setup(t: import('node:test').TestContext) {
  const root = await tempDir(t, 'ups-cost-')
  const runs = join(root, 'runs')
  const b = await createRunDir(runs, 'run_20250308_000000_000b')
  await updateMetadata(b, {status: 'finished'})
  const c = await createRunDir(runs, 'run_20250307_000000_000c')
  await updateMetadata(c, {status: 'failed', failed_at: '2025-03-07T03:00:00Z'})
  const lines = [
    launchLine({instance_id: 1, run_id: 'run_20250309_000000_000a', dph: 0.5, started_at: '2025-03-09T00:00:00Z'}),
    launchLine({instance_id: 2, run_id: b.id, dph: 1.0, started_at: '2025-03-08T00:00:00Z'}),
    launchLine({instance_id: 3, run_id: c.id, dph: 2.0, started_at: '2025-03-07T00:00:00Z'}),
    launchLine({instance_id: 4, run_id: 'run_20250306_000000_000d', dph: 0.25, estimate: {hours: 8, usd: 2}, started_at: '2025-03-06T00:00:00Z', status: 'finished'}),
    launchLine({instance_id: 5, run_id: 'run_old', dph: 9, started_at: '2025-02-01T00:00:00Z'}),
    '{"instance_id": 6, "run_id": "run_nodph", "started_at": "2025-03-10T00:00:00Z"}',
    'this line is torn',
    // A later line for instance 2 records its end (launch updates the record when it sees it stop).
    JSON.stringify({instance_id: 2, ended_at: '2025-03-08T10:00:00Z'}),
  ]
  await writeFile(join(root, 'launches.jsonl'), lines.join('\n') + '\n')
  const instances = [
    inst({id: 1, dphTotal: 0.5, label: 'burgers'}),
    inst({id: 4, status: 'stopped', intendedStatus: 'stopped', dphTotal: 0.25, uptimeMins: null}),
    inst({id: 7, dphTotal: 1.25}),
  ]
  return {root, runs, instances}
}

test('launch records: tolerant read, later lines merge over earlier ones', async (t) => {
  const {root} = await setup(t)
  const read = await readLaunchRecords(join(root, 'launches.jsonl'))
  assert.deepEqual(read.skipped, [{line: 7, reason: 'not valid JSON'}])
  const two = read.records.find((r) => r.instance_id === 2)!
  assert.equal(two.ended_at, '2025-03-08T10:00:00Z')
  assert.equal(two.dph, 1.0)
  assert.equal(two.run_id, 'run_20250308_000000_000b')
  assert.deepEqual(await readLaunchRecords(join(root, 'absent.jsonl')), {path: join(root, 'absent.jsonl'), exists: false, records: [], skipped: []})
})

test('cost sums known launches exactly: running burn, period totals, success, waste', async (t) => {
  const {root, runs, instances} = await setup(t)
  const r = await costReport({period: 'week', runsRoot: runs, launchRecords: join(root, 'launches.jsonl')}, {provider: {list: async () => instances}, now: () => NOW})
  assert.deepEqual(r.running.map((i) => [i.id, i.dph, i.dailyBurnUsd]), [[1, 0.5, 12], [7, 1.25, 30]])
  assert.equal(r.running[0].runId, 'run_20250309_000000_000a')
  assert.equal(r.hourlyBurnUsd, 1.75)
  assert.equal(r.dailyBurnUsd, 42)

  const by = Object.fromEntries(r.launches.map((l) => [l.instanceId, l]))
  assert.deepEqual(r.launches.map((l) => l.instanceId), [4, 3, 2, 1, 6])
  assert.deepEqual([by[1].hours, by[1].usd, by[1].outcome, by[1].endBasis], [36, 18, 'running', 'running'])
  assert.deepEqual([by[2].hours, by[2].usd, by[2].outcome, by[2].endBasis], [10, 10, 'succeeded', 'record'])
  assert.deepEqual([by[3].hours, by[3].usd, by[3].outcome, by[3].endBasis], [3, 6, 'failed', 'run-dir'])
  assert.deepEqual([by[4].hours, by[4].usd, by[4].outcome, by[4].endBasis], [8, 2, 'succeeded', 'estimate'])
  assert.deepEqual([by[6].usd, by[6].outcome], [null, 'unknown'])
  assert.deepEqual(r.totals, {runs: 5, succeeded: 2, failed: 1, rolledBack: 0, running: 1, unknown: 1, totalUsd: 36, succeededUsd: 12, rolledBackUsd: 0, wasteUsd: 6, costPerSuccessfulRunUsd: 18, unpricedRuns: 1})
  assert.ok(r.assumptions.some((a) => /instance 3: assumed it ended at the run's last known time/.test(a)))
  assert.ok(r.assumptions.some((a) => /instance 4: end unknown, assumed it ran the estimated 8\.00 h/.test(a)))
  assert.ok(r.assumptions.some((a) => /1 unreadable line/.test(a)))

  const day = await costReport({period: 'day', runsRoot: runs, launchRecords: join(root, 'launches.jsonl')}, {provider: {list: async () => instances}, now: () => NOW})
  assert.deepEqual(day.launches.map((l) => l.instanceId), [6])

  const text = renderCost(r)
  assert.match(text, /Burn rate: \$1\.7500\/h = \$42\.00\/day/)
  assert.match(text, /runs launched: +5 \(2 succeeded, 1 failed, 1 running, 1 unknown\)/)
  assert.match(text, /cost per successful run: \$18\.00/)
  assert.match(text, /failed runs \(waste\): +\$6\.00/)
})

test('cost without Vast: launches still priced, the failure said', async (t) => {
  const {root, runs} = await setup(t)
  const list = async (): Promise<Instance[]> => {
    throw new UserError('vastai not found', {code: 'VAST_NOT_INSTALLED', exitCode: 3})
  }
  const r = await costReport({period: 'week', runsRoot: runs, launchRecords: join(root, 'launches.jsonl')}, {provider: {list}, now: () => NOW})
  assert.equal(r.vastError, 'vastai not found')
  assert.deepEqual(r.running, [])
  const one = r.launches.find((l) => l.instanceId === 1)!
  assert.equal(one.endBasis, 'estimate')
  assert.equal(one.outcome, 'unknown')
})

test('cost counts rolled-back launches apart, billed until the rollback; a later destroy does not extend a stop', async (t) => {
  const root = await tempDir(t, 'ups-cost-rb-')
  const lines = [
    // ups launch --wait gave it back 15 minutes later.
    launchLine({instance_id: 11, run_id: 'run_20250309_000000_0011', dph: 2, started_at: '2025-03-09T00:00:00Z'}),
    JSON.stringify({kind: 'update', instance_id: 11, at: '2025-03-09T00:15:00Z', status: 'rolled_back', destroyed_by: 'launch rollback'}),
    // Stopped by the watchdog after 2 h, destroyed by `ups cleanup` a day later.
    launchLine({instance_id: 12, run_id: 'run_20250308_000000_0012', dph: 1, started_at: '2025-03-08T00:00:00Z'}),
    JSON.stringify({kind: 'update', instance_id: 12, at: '2025-03-08T02:00:00Z', status: 'stopped_by_watchdog'}),
    JSON.stringify({kind: 'update', instance_id: 12, at: '2025-03-09T02:00:00Z', status: 'destroyed', destroyed_by: 'ups cleanup'}),
  ]
  await writeFile(join(root, 'launches.jsonl'), lines.join('\n') + '\n')
  const r = await costReport({period: 'week', runsRoot: join(root, 'runs'), launchRecords: join(root, 'launches.jsonl')}, {provider: {list: async () => []}, now: () => NOW})
  const by = Object.fromEntries(r.launches.map((l) => [l.instanceId, l]))
  assert.deepEqual([by[11].hours, by[11].usd, by[11].outcome, by[11].endBasis], [0.25, 0.5, 'rolled_back', 'record'])
  assert.deepEqual([by[12].hours, by[12].usd, by[12].endBasis], [2, 2, 'record'])
  assert.equal(r.totals.rolledBack, 1)
  assert.equal(r.totals.rolledBackUsd, 0.5)
  assert.equal(r.totals.wasteUsd, 0.5)
  assert.equal(r.totals.totalUsd, 2.5)
  const text = renderCost(r)
  assert.match(text, /runs launched: +2 \(0 succeeded, 0 failed, 1 rolled back, /)
  assert.match(text, /failed runs \(waste\): +\$0\.50 \(of which rolled back: \$0\.50\)/)
  assert.match(text, /\n\s+11\s+run_20250309_000000_0011\s+.*rolled back\s+record/)
})
