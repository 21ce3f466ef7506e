import assert from 'node:assert/strict'
import {spawn, spawnSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {execa} from 'execa'

import {createRunDir, historyWriter, updateMetadata, updateSummary} from '../../src/tracking/rundir.js'
import {startMockWandb, type MockWandb} from '../fixtures/mock-wandb.js'

const BIN = join(process.cwd(), 'bin', 'run.js')
let tmp: string
let root: string
let mock: MockWandb

/** An offline run, as `ups run` leaves it with WANDB_MODE=offline. */
async function offlineRun(id: string, status: string): Promise<void> {
  const config = {latent: {dim: 32}, logging: {wandb: {enabled: true, project: 'ups-e2e', run_name: 'offline-burgers', tags: ['e2e']}}}
  const dir = await createRunDir(root, id, {config})
  const w = historyWriter(dir)
  for (let step = 0; step < 40; step++) await w.log(step * 5, {loss: 100 - step, val_nrmse: 1 / (step + 1)}, new Date(Date.UTC(2025, 2, 1, 12, 0, step)))
  await w.close()
  await updateSummary(dir, {best_val_nrmse: 0.025})
  await mkdir(join(dir.paths.checkpoints, 'final'), {recursive: true})
  await writeFile(join(dir.paths.checkpoints, 'final', 'weights.bin'), Buffer.alloc(2048, 7))
  await writeFile(join(dir.paths.eval, 'rollout.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>')
  await updateMetadata(dir, {status})
}

function ups(args: string[], env: Record<string, string | undefined>) {
  return execa(process.execPath, [BIN, ...args], {
    reject: false,
    env: {...env, WANDB_MODE: 'offline'},
    extendEnv: false,
  })
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'ups-sync-e2e-'))
  root = join(tmp, 'artifacts', 'runs')
  mock = await startMockWandb({apiKey: 'e2e-secret-key-9a8b7c6d5e4f'})
  await offlineRun('run_20250301_120000_aaaa', 'finished')
  await offlineRun('run_20250302_120000_bbbb', 'failed')
})
after(async () => {
  await mock.close()
  await rm(tmp, {recursive: true, force: true})
})

describe('ups sync', () => {
  it('uploads an offline run once (--json), and a second sync sends nothing new', async () => {
    const env = {PATH: process.env.PATH, WANDB_API_KEY: mock.apiKey, WANDB_BASE_URL: mock.url}
    const first = await ups(['sync', 'run_20250301', '--runs-root', root, '--json'], env)
    assert.equal(first.exitCode, 0, first.stderr)
    const result = JSON.parse(first.stdout)
    assert.equal(result.runId, 'run_20250301_120000_aaaa')
    assert.equal(result.historySent, 40)
    assert.equal(result.completed, true)
    assert.deepEqual(result.filesSent.sort(), ['checkpoints/final/weights.bin', 'eval/rollout.svg'])
    assert.equal(result.run.url, `${mock.url}/mock-entity/ups-e2e/runs/run_20250301_120000_aaaa`)

    const run = mock.run('ups-e2e', 'run_20250301_120000_aaaa')
    assert.ok(run)
    assert.equal(run.displayName, 'offline-burgers')
    assert.deepEqual(run.tags, ['e2e'])
    assert.deepEqual(run.config.latent, {value: {dim: 32}, desc: null})
    assert.deepEqual(run.history.map((r) => r._step), [...Array(40).keys()].map((s) => s * 5))
    assert.equal(run.history[2]._runtime, 2)
    assert.equal(run.summary.best_val_nrmse, 0.025)
    assert.equal(run.summary.loss, 61)
    assert.equal(run.files['checkpoints/final/weights.bin'].size, 2048)
    assert.equal(run.state, 'finished')

    const second = await ups(['sync', 'run_20250301_120000_aaaa', '--runs-root', root], env)
    assert.equal(second.exitCode, 0, second.stderr)
    assert.match(second.stdout, /Synced run_20250301_120000_aaaa to http:\/\/127\.0\.0\.1/)
    assert.match(second.stdout, /history: 0 new row\(s\) sent, 40 in total/)
    assert.equal(mock.run('ups-e2e', 'run_20250301_120000_aaaa')?.history.length, 40)
    assert.equal(mock.run('ups-e2e', 'run_20250301_120000_aaaa')?.completions, 1)
  })

  it('marks a failed run failed', async () => {
    const env = {PATH: process.env.PATH, WANDB_API_KEY: mock.apiKey, WANDB_BASE_URL: mock.url}
    const r = await ups(['sync', join(root, 'run_20250302_120000_bbbb')], env)
    assert.equal(r.exitCode, 0, r.stderr)
    assert.match(r.stdout, /state: +failed/)
    assert.equal(mock.run('ups-e2e', 'run_20250302_120000_bbbb')?.state, 'failed')
  })

  it('refuses a run directory a live process is writing (exit 1, naming it); a dead writer\'s lock does not stop it', async (t) => {
    const env = {PATH: process.env.PATH, WANDB_API_KEY: mock.apiKey, WANDB_BASE_URL: mock.url}
    const id = 'run_20250303_120000_cccc'
    await offlineRun(id, 'running')
    const lockAt = join(root, id, '.ups.lock')
    const lockOf = (pid: number) => JSON.stringify({pid, hostname: hostname(), started_at: new Date().toISOString(), command: `ups resume ${id}`}) + '\n'
    const writer = spawn('sleep', ['600'], {stdio: 'ignore'})
    t.after(() => writer.kill())
    await writeFile(lockAt, lockOf(writer.pid!))
    const before = mock.requests.length
    const refused = await ups(['sync', id, '--runs-root', root, '--json'], env)
    assert.equal(refused.exitCode, 1, refused.stderr)
    const error = JSON.parse(refused.stdout).error
    assert.equal(error.code, 'RUNDIR_LOCKED')
    assert.match(error.message, new RegExp(`in use by pid ${writer.pid} .*ups resume ${id}`))
    assert.equal(mock.requests.length, before, 'nothing sent')
    assert.equal(mock.run('ups-e2e', id), undefined)

    await writeFile(lockAt, lockOf(spawnSync('true').pid))
    const synced = await ups(['sync', id, '--runs-root', root], env)
    assert.equal(synced.exitCode, 0, synced.stderr)
    assert.equal(mock.run('ups-e2e', id)?.history.length, 40)
    assert.ok(!existsSync(lockAt), 'the stale lock was reclaimed and released')
  })

  it('exits 2 without a key and sends nothing', async () => {
    const before = mock.requests.length
    const r = await ups(['sync', 'run_20250301', '--runs-root', root, '--json'], {PATH: process.env.PATH, WANDB_BASE_URL: mock.url})
    assert.equal(r.exitCode, 2)
    assert.equal(JSON.parse(r.stdout).error.code, 'WANDB_NO_KEY')
    assert.equal(mock.requests.length, before)
  })

  it('exits 2 for an unknown run, and 3 when W&B refuses the key (which is never printed)', async () => {
    const env = {PATH: process.env.PATH, WANDB_API_KEY: mock.apiKey, WANDB_BASE_URL: mock.url}
    const missing = await ups(['sync', 'run_2031', '--runs-root', root], env)
    assert.equal(missing.exitCode, 2)
    assert.match(missing.stderr, /No run "run_2031"/)

    const wrongKey = 'wrong-key-123456789'
    const refused = await ups(['sync', 'run_20250302', '--runs-root', root, '--json'], {...env, WANDB_API_KEY: wrongKey})
    assert.equal(refused.exitCode, 3)
    const error = JSON.parse(refused.stdout).error
    assert.equal(error.code, 'WANDB_AUTH')
    assert.ok(!refused.stdout.includes(wrongKey) && !refused.stderr.includes(wrongKey))
  })
})
