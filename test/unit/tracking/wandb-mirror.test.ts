import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {mkdir, mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {readJsonl} from '../../../src/tracking/rundir.js'
import {WandbMirror, readWandbRun, syncRun} from '../../../src/tracking/wandb.js'
import {startMockWandb, type MockWandb} from '../../fixtures/mock-wandb.js'
import {CONFIG, SETTINGS, allFiles, fakeDeps, newRun} from './wandb-helpers.js'

let tmp: string
let mock: MockWandb
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'ups-wandb-'))
  mock = await startMockWandb({apiKey: 'wandb-secret-key-4f9a8b7c6d5e4f3a2b1c'})
})
after(async () => {
  await mock.close()
  await rm(tmp, {recursive: true, force: true})
})

const env = () => ({WANDB_API_KEY: mock.apiKey, WANDB_BASE_URL: mock.url})
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function assertNoKey(dir: string): Promise<void> {
  const files = await allFiles(dir)
  assert.ok(files.length > 5)
  for (const f of files) assert.ok(!f.text.includes(mock.apiKey), `API key found in ${f.path}`)
}

describe('WandbMirror against the mock server', () => {
  it('sends config, every step once, summary and files, and marks the run finished', async () => {
    mock.faults = {}
    const dir = await newRun(join(tmp, 'happy'))
    const deps = fakeDeps(env())
    const mirror = new WandbMirror(deps)
    const started = await mirror.start(dir, SETTINGS)
    assert.equal(started.active, true)
    for (let step = 0; step < 25; step++) {
      deps.tick(1000)
      await mirror.log({loss: 1 / (step + 1), lr: 0.001}, step)
    }
    await mirror.summary({best_val_nrmse: 0.042})
    await mkdir(join(dir.paths.checkpoints, 'operator'), {recursive: true})
    const weights = Buffer.from([1, 2, 3, 4, 5, 250, 251])
    await writeFile(join(dir.paths.checkpoints, 'operator', 'weights.bin'), weights)
    await writeFile(join(dir.paths.eval, 'rollout.svg'), '<svg/>')
    await mirror.uploadFiles([join(dir.paths.checkpoints, 'operator', 'weights.bin'), 'eval/rollout.svg', '/etc/passwd'])
    const done = await mirror.finish(true)
    assert.equal(done.synced, true)

    const run = mock.run('ups-test', dir.id)
    assert.ok(run)
    assert.equal(run.displayName, 'burgers-32dim')
    assert.equal(run.group, 'burgers')
    assert.equal(run.jobType, 'train')
    assert.deepEqual(run.tags, ['burgers', 'latent32'])
    assert.deepEqual(run.config.latent, {value: {dim: 32}, desc: null})
    assert.deepEqual(run.config.training, {value: CONFIG.training, desc: null})
    assert.deepEqual(run.history.map((r) => r._step), [...Array(25).keys()])
    assert.equal(run.history[3].loss, 0.25)
    assert.equal(run.history[1]._runtime, 2)
    assert.deepEqual(run.offsetErrors, [])
    assert.equal(run.summary.best_val_nrmse, 0.042)
    assert.equal(run.summary.loss, 1 / 25)
    assert.deepEqual(Object.keys(run.files).sort(), ['checkpoints/operator/weights.bin', 'eval/rollout.svg'])
    assert.equal(run.files['checkpoints/operator/weights.bin'].sha256, sha(weights))
    assert.deepEqual(run.uploaded.sort(), ['checkpoints/operator/weights.bin', 'eval/rollout.svg'])
    assert.equal(run.state, 'finished')
    assert.equal(run.exitcode, 0)
    assert.equal(run.completions, 1)
    assert.deepEqual(mock.uploadAuthHeaders, [], 'the API key must not be sent to upload URLs')

    const info = JSON.parse(await readFile(join(dir.path, 'wandb_run.json'), 'utf8'))
    assert.deepEqual(info, {id: dir.id, name: 'burgers-32dim', project: 'ups-test', entity: 'mock-entity', url: `${mock.url}/mock-entity/ups-test/runs/${dir.id}`})
    assert.equal((await readJsonl(join(dir.path, 'wandb', 'queue.jsonl'))).records.length, 25)
    await assertNoKey(dir.path)

    // Syncing a run that is fully uploaded sends nothing new.
    const before = mock.requests.length
    const again = await syncRun(dir, fakeDeps(env()))
    assert.equal(again.historySent, 0)
    assert.deepEqual(again.filesSent, [])
    assert.equal(mock.run('ups-test', dir.id)?.history.length, 25)
    assert.equal(mock.run('ups-test', dir.id)?.completions, 1)
    assert.ok(mock.requests.length - before <= 2, 'only the re-attach is sent')
  })

  it('marks a run that ended badly as failed', async () => {
    mock.faults = {}
    const dir = await newRun(join(tmp, 'failed'))
    const mirror = new WandbMirror(fakeDeps(env()))
    await mirror.start(dir, SETTINGS)
    await mirror.log({loss: 3}, 0)
    const done = await mirror.finish(false)
    assert.equal(done.synced, true)
    const run = mock.run('ups-test', dir.id)
    assert.equal(run?.state, 'failed')
    assert.equal(run?.exitcode, 1)
  })

  for (const [label, settings, extraEnv] of [
    ['no API key', SETTINGS, {WANDB_API_KEY: undefined}],
    ['WANDB_MODE=offline', SETTINGS, {WANDB_MODE: 'offline'}],
    ['WANDB_MODE=disabled', SETTINGS, {WANDB_MODE: 'disabled'}],
    ['logging.wandb.enabled false', {...SETTINGS, enabled: false}, {}],
  ] as const) {
    it(`makes no network call at all with ${label}`, async () => {
      mock.faults = {}
      const before = mock.requests.length
      const dir = await newRun(join(tmp, 'off'))
      const mirror = new WandbMirror(fakeDeps({...env(), ...extraEnv}))
      const status = await mirror.start(dir, settings)
      assert.equal(status.active, false)
      assert.ok(status.reason)
      await mirror.log({loss: 1}, 0)
      await mirror.summary({x: 1})
      await mirror.uploadFiles([dir.paths.config])
      const done = await mirror.finish(true)
      assert.equal(done.synced, false)
      assert.equal(mock.requests.length, before)
      await assert.rejects(stat(join(dir.path, 'wandb')), {code: 'ENOENT'})
    })
  }

  it('never throws into training when W&B is unreachable, and syncRun later uploads everything once', async () => {
    const down = await startMockWandb({apiKey: mock.apiKey})
    const deadUrl = down.url
    await down.close()
    const dir = await newRun(join(tmp, 'down'))
    const deps = fakeDeps({WANDB_API_KEY: mock.apiKey, WANDB_BASE_URL: deadUrl})
    const mirror = new WandbMirror(deps)
    await mirror.start(dir, SETTINGS)
    for (let step = 0; step < 12; step++) await mirror.log({loss: step}, step)
    await writeFile(join(dir.paths.checkpoints, 'last.bin'), 'weights')
    await mirror.uploadFiles(['checkpoints/last.bin'])
    const done = await mirror.finish(true)
    assert.equal(done.synced, false)
    assert.equal(done.pending?.history, 12)
    assert.match(done.lastError ?? '', /cannot reach/)

    mock.faults = {}
    const result = await syncRun(dir, fakeDeps(env()))
    assert.equal(result.historySent, 12)
    assert.equal(result.completed, true)
    assert.deepEqual(result.filesSent, ['checkpoints/last.bin'])
    const run = mock.run('ups-test', dir.id)
    assert.deepEqual(run?.history.map((r) => r._step), [...Array(12).keys()])
    assert.equal(run?.state, 'finished')
    await assertNoKey(dir.path)
  })

  it('ends with a complete run and no duplicated steps when half the requests fail', async () => {
    mock.faults = {failEvery: 2, dropAfterProcessEvery: 3}
    const dir = await newRun(join(tmp, 'flaky'))
    const deps = fakeDeps(env())
    const mirror = new WandbMirror(deps)
    await mirror.start(dir, SETTINGS)
    for (let step = 0; step < 700; step++) {
      if (step % 50 === 0) deps.tick(120_000) // let the backoff expire now and then
      await mirror.log({loss: 1000 - step}, step)
    }
    await mirror.summary({best: 1})
    await writeFile(join(dir.paths.eval, 'results.json'), '{"nrmse":0.1}')
    await mirror.uploadFiles(['eval/results.json'])
    for (let step = 700; step < 760; step++) await mirror.log({loss: 1000 - step}, step)
    // The network dies for good before the end: finishing cannot deliver, and must not throw.
    mock.faults = {failEvery: 1}
    const finished = await mirror.finish(true)
    assert.equal(finished.synced, false)
    assert.ok(mock.requests.some((r) => r.outcome === 200) && mock.requests.some((r) => r.outcome === 'dropped-after'))
    const partial = mock.run('ups-test', dir.id)
    assert.ok(partial && partial.history.length < 760 && partial.state === 'running')

    mock.faults = {failEvery: 2, dropAfterProcessEvery: 3}

    const result = await syncRun(dir, fakeDeps(env()), {attempts: 30})
    assert.equal(result.completed, true)
    const run = mock.run('ups-test', dir.id)
    assert.ok(run)
    const steps = run.history.map((r) => r._step)
    assert.equal(steps.length, 760, 'no step duplicated or lost')
    assert.deepEqual(steps, [...Array(760).keys()])
    assert.deepEqual(run.offsetErrors, [])
    assert.equal(run.summary.best, 1)
    assert.equal(run.summary.loss, 241)
    assert.equal(run.files['eval/results.json'].size, 13)
    assert.equal(run.state, 'finished')
    await assertNoKey(dir.path)
    mock.faults = {}
  })

  it('reads history and summary back for analyze', async () => {
    mock.faults = {}
    const dir = await newRun(join(tmp, 'read'))
    const mirror = new WandbMirror(fakeDeps(env()))
    await mirror.start(dir, SETTINGS)
    for (let step = 0; step < 5; step++) await mirror.log({loss: step * 2}, step * 10)
    await mirror.finish(true)
    const read = await readWandbRun('mock-entity', 'ups-test', dir.id, fakeDeps(env()))
    assert.deepEqual(read.history.map((h) => [h.step, h.metrics.loss]), [[0, 0], [10, 2], [20, 4], [30, 6], [40, 8]])
    assert.equal(read.run.summary.loss, 8)
    assert.equal(read.run.state, 'finished')
    assert.deepEqual(read.run.config.latent, {dim: 32})
    await assert.rejects(readWandbRun('mock-entity', 'ups-test', 'nope', fakeDeps(env())), {code: 'WANDB_RUN_NOT_FOUND'})
    await assert.rejects(readWandbRun('mock-entity', 'ups-test', dir.id, fakeDeps({WANDB_BASE_URL: mock.url})), {code: 'WANDB_NO_KEY'})
  })
})
