/**
 * `ups train` with 2 data-parallel replicas (UPS_TRAIN_WORKERS=2, accum_steps 2): the choice is
 * logged and recorded, a run killed mid-pipeline resumes to bit-identical weights, and SIGINT
 * ends the process with its worker threads.
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {CLI, runCli} from '../helpers.js'
import {tinyConfig, weightsSha} from './train-fixtures.js'

const STAGES = ['autoencoder', 'operator', 'diff_residual', 'consistency_distill', 'steady_prior']
const env = {UPS_TRAIN_WORKERS: '2'}

async function hashes(run: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const s of STAGES) for (const kind of ['', '_best', '_ema']) out[`${s}${kind}`] = await weightsSha(join(run, 'checkpoints', `${s}${kind}.ckpt`))
  return out
}

describe('ups train with data-parallel replicas', () => {
  let cwd = ''
  const args = (run: string) => ['train', 'tiny.yaml', '--backend', 'wasm', '--run-dir', run]
  let reference: Record<string, string> = {}

  before(async () => {
    cwd = await mkdtemp(join(tmpdir(), 'ups-train-parallel-'))
    await writeFile(join(cwd, 'tiny.yaml'), tinyConfig('data').replace('training:\n', 'training:\n  accum_steps: 2\n'))
    const r = await runCli(args('ref'), {cwd, env})
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /Stage operator: data-parallel: 2 replicas \(main \+ 1 worker\) on wasm/)
    reference = await hashes(join(cwd, 'ref'))
  })
  after(() => rm(cwd, {recursive: true, force: true}))

  it('records the replicas per stage with the backend in metadata.json', async () => {
    const meta = JSON.parse(await readFile(join(cwd, 'ref', 'metadata.json'), 'utf8'))
    assert.equal(meta.data_parallel.backend, 'wasm')
    for (const s of STAGES) assert.deepEqual(meta.data_parallel.stages[s], {replicas: 2, reason: 'UPS_TRAIN_WORKERS 2'}, s)
    const single = await runCli([...args('one'), '--stage', 'autoencoder', '--json'], {cwd, env: {UPS_TRAIN_WORKERS: '1'}})
    assert.equal(single.code, 0, single.stderr)
    assert.match(single.stderr, /data-parallel: off \(1 replica, main thread\)/)
  })

  it('a SIGKILL mid-pipeline (worker threads running), then resume: bit-identical to the uninterrupted run', async () => {
    const killed = await runCli(args('killed'), {cwd, env: {...env, UPS_TEST_FAULT: 'kill:operator:3:after-last'}})
    assert.equal(killed.code, -1, `not killed: ${killed.stderr}`)
    const resumed = await runCli(args('killed'), {cwd, env})
    assert.equal(resumed.code, 0, resumed.stderr)
    assert.match(resumed.stderr, /Resuming operator after epoch 3/)
    assert.deepEqual(await hashes(join(cwd, 'killed')), reference)
  })

  it('SIGINT during a parallel stage ends the process (no thread keeps it alive)', async () => {
    const child = spawn(process.execPath, [CLI, ...args('interrupted')], {cwd, env: {...process.env, ...env}, stdio: ['ignore', 'ignore', 'pipe']})
    let stderr = ''
    const closed = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => child.on('close', (code, signal) => resolve({code, signal})))
    child.stderr.on('data', (d) => {
      stderr += d
      if (/\[operator\] epoch 1\//.test(stderr) && !child.killed) child.kill('SIGINT')
    })
    const guard = setTimeout(() => child.kill('SIGKILL'), 120_000)
    const r = await closed
    clearTimeout(guard)
    assert.equal(r.signal, 'SIGINT', `${JSON.stringify(r)} ${stderr.slice(-400)}`)
  })
})
