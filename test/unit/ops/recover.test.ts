import assert from 'node:assert/strict'
import {appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, test} from 'node:test'

import {recoverInstance} from '../../../src/ops/index.js'
import {UserError} from '../../../src/util/errors.js'
import {appendLaunchUpdate, launch, readLaunchRecords} from '../../../src/vast/index.js'
import {CONFIG, HEAD, type Harness, ORIGIN, harness} from './helpers.js'

describe('ups recover (PROC-002) against the fake', () => {
  let h: Harness
  let oldId: number
  let runId: string
  const never = async () => assert.fail('must not ask')
  beforeEach(async () => {
    h = harness()
    const r = await launch({configPath: CONFIG, gpu: 'RTX_4090', autoShutdown: true, runArgs: ['--wandb-run-name=b32']}, h.deps)
    oldId = r.instanceId!
    runId = r.runId
    h.fake.writeLog(oldId, 'Training started\n[operator] epoch 7/25 loss=0.02\nssh: host unreachable\n')
    h.fake.advance(600)
  })
  afterEach(() => h.cleanup())

  test('--dry-run shows the plan and changes nothing', async () => {
    const before = h.calls().length
    const r = await recoverInstance({instanceId: oldId, yes: false, dryRun: true, isTTY: false, ask: never}, h.deps)
    assert.equal(r.dryRun, true)
    assert.equal(r.steps.length, 6)
    assert.match(r.steps[2], new RegExp(`destroy instance ${oldId}`))
    assert.match(r.steps[3], new RegExp(`ups resume ${runId}`))
    assert.match(r.steps[4], new RegExp(`copy the saved checkpoints to /workspace/ups/artifacts/runs/${runId}/checkpoints on it, then .*\\.restore-complete`))
    assert.match(r.launch.onstart.plain, new RegExp(`artifacts/runs/${runId}/\\.restore-complete`))
    assert.deepEqual(h.calls().slice(before), ['search offers'])
    assert.match(r.launch.onstart.plain, new RegExp(`ups resume ${runId} --wandb-run-name=b32\\b`))
    assert.ok(!r.launch.onstart.plain.includes('ups run --train-config'))
  })

  test('refuses to destroy without --yes on a non-terminal (exit 2)', async () => {
    await assert.rejects(recoverInstance({instanceId: oldId, yes: false, dryRun: false, isTTY: false, ask: never}, h.deps), (e: UserError) => e.code === 'RECOVER_CONFIRM_REQUIRED' && e.exitCode === 2)
    assert.ok(!h.calls().includes('destroy instance'))
    assert.equal(h.fake.read().instances.length, 1)
  })

  test('saves log and checkpoints, destroys the old instance, launches a resuming one linked to it', async () => {
    const ckpt = join(h.fake.dir, 'disks', String(oldId), 'workspace/ups/artifacts/runs', runId, 'checkpoints')
    mkdirSync(ckpt, {recursive: true})
    writeFileSync(join(ckpt, 'operator.json'), '{"epoch": 7}')
    const asked: string[] = []
    const r = await recoverInstance({instanceId: oldId, yes: false, dryRun: false, isTTY: true, ask: async (q) => (asked.push(q), true)}, h.deps)
    assert.equal(asked.length, 1)
    assert.match(readFileSync(r.saved!.logPath!, 'utf8'), /epoch 7\/25/)
    assert.equal(readFileSync(join(r.saved!.checkpoints.localPath!, 'operator.json'), 'utf8'), '{"epoch": 7}')
    assert.deepEqual(r.notSaved, [])
    const insts = h.fake.read().instances
    assert.equal(insts.find((i) => i.id === oldId)!.destroyed, true)
    const fresh = insts.find((i) => i.id === r.launch.instanceId)!
    assert.match(fresh.onstart as string, new RegExp(`ups resume ${runId}`))
    assert.equal(fresh.image, insts[0].image)
    assert.equal(fresh.disk, 64)
    const {launches} = await readLaunchRecords(h.deps.launchesFile)
    assert.equal(launches.length, 2)
    assert.deepEqual(launches[1].recovered_from, {instance_id: oldId, run_id: runId})
    assert.equal(launches[1].run_id, runId)
    assert.deepEqual(launches[1].source, {git_url: ORIGIN, ref: HEAD, dirty: false})
    assert.equal(launches[0].status, 'recovered')
    assert.equal(launches[0].replaced_by, r.launch.instanceId)
  })

  test('reports what it could not save (no checkpoints on the instance) and still recovers', async () => {
    const r = await recoverInstance({instanceId: oldId, yes: true, dryRun: false, isTTY: false, ask: never}, h.deps)
    assert.equal(r.saved!.checkpoints.localPath, null)
    assert.match(r.notSaved.join('\n'), /checkpoints .*No such file or directory/)
    assert.ok(r.launch.instanceId)
  })

  test('a destroy that fails twice is retried with backoff; the old launch record shows it destroyed', async () => {
    const sleeps: number[] = []
    h.deps.sleep = async (ms) => {
      sleeps.push(ms)
      h.fake.advance(ms / 1000)
    }
    h.fake.update((s) => void (s.faults = [...(s.faults ?? []), {command: 'destroy instance', status: 500, msg: 'Internal server error', times: 2} as never]))
    const r = await recoverInstance({instanceId: oldId, yes: true, dryRun: false, isTTY: false, ask: never}, h.deps)
    assert.equal(r.destroyed, true)
    assert.ok(r.launch.instanceId)
    assert.deepEqual(sleeps.slice(0, 2), [5_000, 10_000], 'backoff between the destroy tries')
    assert.equal(h.fake.read().instances.find((i) => i.id === oldId)!.destroyed, true)
    const {launches} = await readLaunchRecords(h.deps.launchesFile)
    assert.equal(launches[0].destroyed_by, 'ups recover')
    assert.equal(launches[0].status, 'recovered')
  })

  test('a destroy that keeps failing stops the recovery before a replacement is rented', async () => {
    h.fake.update((s) => void (s.faults = [...(s.faults ?? []), {command: 'destroy instance', status: 500, msg: 'Internal server error', times: 10} as never]))
    await assert.rejects(recoverInstance({instanceId: oldId, yes: true, dryRun: false, isTTY: false, ask: never}, h.deps), (e: UserError) => e.code === 'RECOVER_DESTROY_FAILED' && e.exitCode === 3)
    assert.equal(h.fake.read().instances.length, 1)
  })

  test('nothing is destroyed when the replacement cannot launch (over budget)', async () => {
    await assert.rejects(recoverInstance({instanceId: oldId, yes: true, dryRun: false, isTTY: false, ask: never}, {...h.deps, estimate: async () => ({hours: 100, usd: 500, pricePerHour: 5})}), (e: UserError) => e.code === 'LAUNCH_OVER_BUDGET')
    assert.ok(!h.calls().includes('destroy instance'))
  })
})

describe('launch records file', () => {
  let h: Harness
  beforeEach(() => (h = harness()))
  afterEach(() => h.cleanup())

  test('appends one line per launch, merges updates, tolerates a torn last line and keeps appending after it', async () => {
    const a = await launch({configPath: CONFIG, gpu: 'RTX_4090', autoShutdown: false}, h.deps)
    appendFileSync(h.deps.launchesFile, '{"kind": "launch", "instance_id": 9')
    let rec = await readLaunchRecords(h.deps.launchesFile)
    assert.equal(rec.launches.length, 1)
    assert.equal(rec.tornLines.length, 1)
    await appendLaunchUpdate(h.deps.launchesFile, {instance_id: a.instanceId!, at: '2025-11-28T18:00:00.000Z', status: 'stopped_by_watchdog'})
    rec = await readLaunchRecords(h.deps.launchesFile)
    assert.equal(rec.launches[0].status, 'stopped_by_watchdog')
    assert.equal(rec.launches[0].updated_at, '2025-11-28T18:00:00.000Z')
    assert.equal(rec.tornLines.length, 1, 'the update went on a line of its own')
    assert.deepEqual(await readLaunchRecords(join(h.dir, 'none.jsonl')).then((r) => r.launches), [])
    assert.ok(existsSync(h.deps.launchesFile))
  })
})
