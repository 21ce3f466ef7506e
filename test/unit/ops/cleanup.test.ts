import assert from 'node:assert/strict'
import {mkdir, readdir, stat, utimes, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {cleanup, type CleanupOptions} from '../../../src/ops/cleanup.js'
import {parseDuration} from '../../../src/ops/duration.js'
import {createRunDir, updateMetadata} from '../../../src/tracking/rundir.js'
import {VastCli, VastProvider} from '../../../src/vast/index.js'
import {makeFakeVast} from '../../fixtures/fake-vast.js'
import {tempDir} from '../../helpers.js'
import {launchLine} from './run-fixture.js'

const DAY = 86_400_000

test('durations', () => {
  assert.equal(parseDuration('7d', 'x'), 7 * DAY)
  assert.equal(parseDuration('12h', 'x'), 12 * 3_600_000)
  assert.equal(parseDuration('2w', 'x'), 14 * DAY)
  assert.equal(parseDuration('30', 'x'), 30 * DAY)
  assert.equal(parseDuration('90', 'wait-timeout', 's'), 90_000, 'a bare number in the unit the flag says')
  assert.equal(parseDuration('15m', 'wait-timeout', 's'), 15 * 60_000)
  assert.equal(parseDuration('500ms', 'x'), 500)
  assert.throws(() => parseDuration('soon', 'cache-older-than'), (e: Error & {code?: string; exitCode?: number}) => e.code === 'OPS_BAD_DURATION' && e.exitCode === 2 && /--cache-older-than/.test(e.message))
})

/**
 * Everything on disk is written now; the cleanup clock runs 40 days ahead, so files look
 * 40 days old unless their metadata says otherwise.
 */
async function setup(t: import('node:test').TestContext) {
  const root = await tempDir(t, 'ups-cleanup-')
  const now = Date.now() + 40 * DAY
  const iso = (ms: number) => new Date(ms).toISOString()
  const fake = makeFakeVast({now: Math.floor(now / 1000)})
  t.after(() => fake.cleanup())
  const running = fake.addInstance({id: 31000001, ageSeconds: 30 * 86400})
  const oldStopped = fake.addInstance({id: 31000002, ageSeconds: 10 * 86400, intended_status: 'stopped'})
  const newStopped = fake.addInstance({id: 31000003, ageSeconds: 2 * 86400, intended_status: 'stopped'})
  const endedRecently = fake.addInstance({id: 31000004, ageSeconds: 20 * 86400, intended_status: 'stopped'})

  const runs = join(root, 'artifacts', 'runs')
  const done = await createRunDir(runs, 'run_20250101_000000_0001')
  await updateMetadata(done, {status: 'finished'})
  const live = await createRunDir(runs, 'run_20250101_000000_0002')
  await updateMetadata(live, {status: 'running', heartbeat_at: iso(now - 3_600_000)})
  const remote = await createRunDir(runs, 'run_20250101_000000_0003')
  await updateMetadata(remote, {status: 'running'})
  const recent = await createRunDir(runs, 'run_20250101_000000_0004')
  await updateMetadata(recent, {status: 'finished', finished_at: iso(now - DAY)})

  const cache = join(root, 'data', 'latent_cache')
  await mkdir(join(cache, 'burgers1d_train'), {recursive: true})
  await writeFile(join(cache, 'burgers1d_train', 'meta.json'), '{}')
  await writeFile(join(cache, 'burgers1d_train', 'latents.bin'), Buffer.alloc(4096))
  await mkdir(join(cache, 'burgers1d_val'), {recursive: true})
  await writeFile(join(cache, 'burgers1d_val', 'meta.json'), '{}')
  await utimes(join(cache, 'burgers1d_val', 'meta.json'), new Date(now - DAY), new Date(now - DAY))
  await mkdir(join(cache, 'notes'), {recursive: true})
  await writeFile(join(cache, 'notes', 'README'), 'not a cache')

  const records = join(root, 'launches.jsonl')
  await writeFile(records, [launchLine({instance_id: running, run_id: remote.id}), launchLine({instance_id: endedRecently, run_id: 'run_x', ended_at: iso(now - DAY)})].join('\n') + '\n')
  const options: CleanupOptions = {
    stoppedOlderThanMs: 7 * DAY, archiveRunsOlderThanMs: 30 * DAY, cacheOlderThanMs: 14 * DAY,
    runsRoot: runs, archiveRoot: join(root, 'archive', 'runs'), cacheDirs: [cache], launchRecords: records, yes: false,
  }
  const deps = {provider: new VastProvider(new VastCli({bin: fake.bin, env: fake.env(), attempts: 1})), now: () => new Date(now)}
  return {root, fake, options, deps, ids: {running, oldStopped, newStopped, endedRecently}, runs: {done, live, remote, recent}, cache}
}

test('cleanup dry run lists what it would do and changes nothing', async (t) => {
  const {fake, options, deps, ids, runs, cache} = await setup(t)
  const r = await cleanup(options, deps)
  assert.equal(r.dryRun, true)
  const act = Object.fromEntries(r.instances.map((i) => [i.id, i.action]))
  assert.deepEqual(act, {[ids.running]: 'skip', [ids.oldStopped]: 'destroy', [ids.newStopped]: 'skip', [ids.endedRecently]: 'skip'})
  assert.match(r.instances.find((i) => i.id === ids.running)!.reason, /running: never touched/)
  assert.deepEqual(r.runs.map((x) => [x.runId, x.action]), [[runs.done.id, 'archive'], [runs.live.id, 'skip'], [runs.remote.id, 'skip']])
  assert.match(r.runs[1].reason, /in progress/)
  assert.match(r.runs[2].reason, new RegExp(`its instance ${ids.running} is running`))
  assert.deepEqual(r.caches.map((c) => [c.path, c.action, c.bytes]), [[join(cache, 'burgers1d_train'), 'delete', 4098]])
  assert.deepEqual(r.summary, {destroy: 1, archive: 1, delete: 1, bytesFreed: 4098, errors: 0})
  // Nothing happened.
  assert.equal((fake.read().calls ?? []).filter((c) => c.argv[0] === 'destroy').length, 0)
  assert.ok((await stat(runs.done.path)).isDirectory())
  assert.ok((await stat(join(cache, 'burgers1d_train', 'meta.json'))).isFile())
})

test('cleanup --yes acts on the plan only, never on running instances or runs in progress', async (t) => {
  const {root, fake, options, deps, ids, runs, cache} = await setup(t)
  const r = await cleanup({...options, yes: true}, deps)
  assert.equal(r.dryRun, false)
  const destroyed = (fake.read().calls ?? []).filter((c) => c.argv[0] === 'destroy').map((c) => Number(c.argv[2]))
  assert.deepEqual(destroyed, [ids.oldStopped])
  assert.equal(fake.read().instances.find((i) => i.id === ids.running)!.destroyed, undefined)
  assert.ok(r.instances.find((i) => i.id === ids.oldStopped)!.done)
  assert.deepEqual(await readdir(join(root, 'archive', 'runs')), [runs.done.id])
  assert.ok((await stat(join(root, 'archive', 'runs', runs.done.id, 'metadata.json'))).isFile())
  assert.deepEqual((await readdir(options.runsRoot)).sort(), [runs.live.id, runs.remote.id, runs.recent.id].sort())
  assert.deepEqual((await readdir(cache)).sort(), ['burgers1d_val', 'notes'])
  assert.equal(r.summary.errors, 0)

  // Running it again finds nothing more to do.
  const again = await cleanup({...options, yes: true}, deps)
  assert.deepEqual([again.summary.destroy, again.summary.archive, again.summary.delete], [0, 0, 0])
})

test('cleanup keeps launched runs and every instance when Vast cannot be reached', async (t) => {
  const {fake, options, deps, runs} = await setup(t)
  fake.update((s) => {
    s.faults = [{command: 'show instances', status: 500, msg: 'Internal error'}]
  })
  const r = await cleanup({...options, yes: true}, deps)
  assert.deepEqual(r.instances, [])
  assert.match(r.notes[0], /vastai show instances failed/)
  assert.equal(r.runs.find((x) => x.runId === runs.remote.id)!.action, 'skip')
  assert.equal(r.runs.find((x) => x.runId === runs.done.id)!.action, 'archive')
})

test('cleanup --yes notes each destroy on the instance\'s launch record (when ups launched it)', async (t) => {
  const {fake, options, deps, ids} = await setup(t)
  const {appendFile} = await import('node:fs/promises')
  await appendFile(options.launchRecords!, launchLine({kind: 'launch', instance_id: ids.oldStopped, run_id: 'run_old_stopped'}) + '\n')
  await cleanup({...options, yes: true}, deps)
  assert.equal(fake.read().instances.find((i) => i.id === ids.oldStopped)!.destroyed, true)
  const {readLaunchRecords} = await import('../../../src/vast/records.js')
  const rec = (await readLaunchRecords(options.launchRecords!)).launches.find((l) => l.instance_id === ids.oldStopped)!
  assert.equal(rec.status, 'destroyed')
  assert.equal(rec.destroyed_by, 'ups cleanup')
  assert.equal(rec.updated_at, deps.now().toISOString())
})

/** A run-dir lock file naming `pid` on this host, as `ups resume` leaves while it writes. */
async function lockRun(path: string, pid: number): Promise<void> {
  const {hostname} = await import('node:os')
  await writeFile(join(path, '.ups.lock'), JSON.stringify({pid, hostname: hostname(), started_at: new Date().toISOString(), command: 'ups resume run_20250101_000000_0001'}) + '\n')
}

test('cleanup keeps a run directory whose lock a live process holds, and says who holds it', async (t) => {
  const {spawn} = await import('node:child_process')
  const {options, deps, runs} = await setup(t)
  const holder = spawn('sleep', ['600'], {stdio: 'ignore'})
  t.after(() => holder.kill())
  await lockRun(runs.done.path, holder.pid!)
  const r = await cleanup({...options, yes: true}, deps)
  const item = r.runs.find((x) => x.runId === runs.done.id)!
  assert.equal(item.action, 'skip')
  assert.match(item.reason, new RegExp(`in use by pid ${holder.pid} .*ups resume run_20250101_000000_0001`))
  assert.match(item.holder!, new RegExp(`pid ${holder.pid}`))
  assert.equal(r.summary.archive, 0)
  assert.ok((await stat(join(runs.done.path, 'metadata.json'))).isFile(), 'not moved')
})

test('cleanup archives a run directory whose lock holder died, without the stale lock', async (t) => {
  const {spawnSync} = await import('node:child_process')
  const {root, options, deps, runs} = await setup(t)
  const dead = spawnSync('true').pid
  await lockRun(runs.done.path, dead)
  const r = await cleanup({...options, yes: true}, deps)
  const item = r.runs.find((x) => x.runId === runs.done.id)!
  assert.equal(item.action, 'archive')
  assert.equal(item.done, true, item.error)
  const archived = join(root, 'archive', 'runs', runs.done.id)
  assert.ok((await stat(join(archived, 'metadata.json'))).isFile())
  assert.ok(!(await readdir(archived)).includes('.ups.lock'))
})
