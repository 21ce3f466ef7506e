/**
 * Kill-and-resume equivalence: a run killed with SIGKILL at seeded moments and resumed ends with
 * bit-identical weights to an uninterrupted run; a corrupt newest checkpoint is skipped for the
 * previous one with the same result.
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'

import {loadConfig} from '../../src/config/index.js'
import {Rng} from '../../src/training/rng.js'
import {loadSimulator} from '../../src/training/simulator.js'
import {CLI, runCli} from '../helpers.js'
import {tinyConfig, weightsSha} from './train-fixtures.js'

const STAGES = ['autoencoder', 'operator', 'diff_residual', 'consistency_distill', 'steady_prior']

/** Starts `ups train` and SIGKILLs it `delayMs` after its stderr first matches `after`. */
function runAndKill(cwd: string, args: string[], kill: {after: RegExp; delayMs: number}): Promise<{killed: boolean; stderr: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {cwd, stdio: ['ignore', 'ignore', 'pipe']})
    let stderr = ''
    let killed = false
    let timer: NodeJS.Timeout | undefined
    child.stderr.on('data', (d) => {
      stderr += d
      if (!timer && kill.after.test(stderr)) {
        timer = setTimeout(() => {
          if (child.exitCode === null) {
            killed = true
            child.kill('SIGKILL')
          }
        }, kill.delayMs)
      }
    })
    child.on('error', reject)
    child.on('close', () => {
      clearTimeout(timer)
      resolve({killed, stderr})
    })
  })
}

async function hashes(run: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const s of STAGES) {
    for (const kind of ['', '_best', '_ema']) out[`${s}${kind}`] = await weightsSha(join(run, 'checkpoints', `${s}${kind}.ckpt`))
  }
  return out
}

const epochOf = async (ckpt: string): Promise<number> => JSON.parse(await readFile(join(ckpt, 'manifest.json'), 'utf8')).epoch

describe('ups train resume', () => {
  let cwd = ''
  let reference: Record<string, string> = {}
  const args = (run: string) => ['train', 'tiny.yaml', '--backend', 'wasm', '--run-dir', run]

  after(() => rm(cwd, {recursive: true, force: true}))

  before(async () => {
    cwd = await mkdtemp(join(tmpdir(), 'ups-train-resume-'))
    await writeFile(join(cwd, 'tiny.yaml'), tinyConfig('data'))
    const r = await runCli(args('ref'), {cwd})
    assert.equal(r.code, 0, r.stderr)
    reference = await hashes(join(cwd, 'ref'))
  })

  it('SIGKILL at seeded moments, then resume: the same final weights as an uninterrupted run', async () => {
    const rng = new Rng(20250301)
    // Seeded delays after landmarks in three stages: mid-epoch, mid-checkpoint or mid-cache-write.
    const kills = [
      {after: /Latent cache .*building/, delayMs: rng.int(150)},
      {after: /\[operator\] epoch 2\//, delayMs: rng.int(400)},
      {after: /\[diff_residual\] epoch 1\//, delayMs: rng.int(300)},
    ]
    const outputs: string[] = []
    for (const kill of kills) {
      const r = await runAndKill(cwd, args('killed'), kill)
      if (process.env.UPS_TEST_DEBUG) process.stderr.write(`--- kill ${kill.after} +${kill.delayMs}ms killed=${r.killed}\n${r.stderr.split('\n').slice(-3).join('\n')}\n`)
      outputs.push(r.stderr)
      assert.ok(r.killed, `the run ended before kill ${kill.after}: ${r.stderr}`)
    }
    const final = await runCli(args('killed'), {cwd})
    assert.equal(final.code, 0, final.stderr)
    assert.match(final.stderr, /Training pipeline completed successfully/)
    assert.match([...outputs, final.stderr].join('\n'), /Resuming/)
    assert.deepEqual(await hashes(join(cwd, 'killed')), reference)
  })

  it('SIGKILL at exact points of a final epoch\'s checkpoint writes, then resume: the same final weights and no swap leftovers', async () => {
    const dir = join(cwd, 'points', 'checkpoints')
    // Each run is killed (UPS_TEST_FAULT makes the process SIGKILL itself) at one point and the next
    // resumes from there. after-numbered / swap-last of diff_residual's final epoch are the moments
    // that once left diff_residual.ckpt at epoch 1 (or missing): resume started from the newer numbered
    // checkpoint (or the swap's temp folder), saw the stage finished and never rewrote it.
    const kills: Array<{fault: string; check?: () => Promise<void>}> = [
      {fault: 'kill:operator:4:swap-last', check: async () => assert.ok((await readdir(dir)).some((n) => /^\.operator\.ckpt\.\w+\.tmp$/.test(n)))},
      {
        fault: 'kill:diff_residual:2:after-numbered',
        check: async () => {
          assert.equal(await epochOf(join(dir, 'diff_residual_epoch0002.ckpt')), 2)
          assert.equal(await epochOf(join(dir, 'diff_residual.ckpt')), 1)
        },
      },
      {fault: 'kill:consistency_distill:2:swap-numbered'},
      {fault: 'kill:steady_prior:2:swap-best'},
    ]
    for (const {fault, check} of kills) {
      const r = await runCli(args('points'), {cwd, env: {UPS_TEST_FAULT: fault}})
      assert.equal(r.code, -1, `${fault}: the process was not killed: ${r.stderr}`)
      assert.doesNotMatch(r.stderr, /Training pipeline (completed|failed)/)
      await check?.()
    }
    const final = await runCli(args('points'), {cwd})
    assert.equal(final.code, 0, final.stderr)
    assert.match(final.stderr, /Resuming steady_prior after epoch 1/)
    assert.deepEqual(await hashes(join(cwd, 'points')), reference)
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('.')), [])
  })

  it('a corrupt newest checkpoint is reported and skipped for the previous one; the result is unchanged', async () => {
    const crash = await runCli(args('corrupt'), {cwd, env: {UPS_TEST_FAULT: 'crash:operator:3'}})
    assert.equal(crash.code, 1, crash.stderr)
    assert.match(crash.stderr, /Training pipeline failed: Simulated crash after operator epoch 3/)
    const dir = join(cwd, 'corrupt', 'checkpoints')
    assert.ok((await readdir(dir)).includes('operator_epoch0002.ckpt'))
    // Damage both copies of epoch 3 (the last and the numbered one).
    for (const name of ['operator.ckpt', 'operator_epoch0003.ckpt']) {
      const path = join(dir, name, 'weights.bin')
      const bytes = await readFile(path)
      bytes[10] ^= 0xff
      await writeFile(path, bytes)
    }
    const r = await runCli([...args('corrupt'), '--resume'], {cwd})
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr.match(/Skipping unusable checkpoint: Checkpoint .*operator(_epoch0003)?\.ckpt is corrupt or incomplete: weights\.bin does not match its sha256/g)?.length, 2, r.stderr)
    assert.match(r.stderr, /Resuming operator after epoch 2 .*operator_epoch0002\.ckpt/)
    assert.deepEqual(await hashes(join(cwd, 'corrupt')), reference)
  })

  it('--stage on a finished stage redoes it (same seed, same weights); loadSimulator serves the trained models', async () => {
    const r = await runCli([...args('ref'), '--stage', 'steady_prior'], {cwd})
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /Redoing steady_prior/)
    assert.match(r.stderr, /\[steady_prior\] epoch 2\/2/)
    assert.doesNotMatch(r.stderr, /\[operator\] epoch/)
    assert.deepEqual(await hashes(join(cwd, 'ref')), reference)

    const {config} = await loadConfig(join(cwd, 'tiny.yaml'))
    const sim = await loadSimulator(config, join(cwd, 'ref', 'checkpoints'), {backend: 'cpu'})
    try {
      assert.equal(sim.hashes.operator, reference.operator_best)
      assert.equal(sim.hashes.consistency_distill, reference.consistency_distill_best)
      assert.equal(sim.distilled, true)
      assert.deepEqual(sim.gridShape, [32])
      assert.equal(sim.dt, 0.1)
      const u = Float32Array.from({length: 2 * 32}, (_, i) => Math.sin(i / 3))
      const z = await sim.encode(u, [2, 32, 1])
      assert.deepEqual(z.shape, [2, 4, 4])
      const z1 = await sim.step(z)
      assert.deepEqual(z1.shape, [2, 4, 4])
      assert.notDeepEqual(Array.from(z1.data), Array.from(z.data))
      const corrected = await sim.correct!(z1, {noise: 'sample', seed: 1})
      assert.deepEqual(corrected.shape, [2, 4, 4])
      // The correctors learned residual / residual_scale; the correction is scaled back, so it is
      // of the residual's size (~1x here; an unscaled one is of the unit noise's size, ~5x).
      const state = JSON.parse(await readFile(join(cwd, 'ref', 'checkpoints', 'metadata.json'), 'utf8'))
      const scale = state.stages.diff_residual.residual_scale
      assert.ok(Number.isFinite(scale) && scale > 0 && scale < 0.5, `residual_scale ${scale}`)
      const correctionRms = Math.sqrt(corrected.data.reduce((a, v, i) => a + (v - z1.data[i]) ** 2, 0) / corrected.data.length)
      assert.ok(correctionRms < 3 * scale, `correction RMS ${correctionRms} vs residual scale ${scale}`)
      assert.deepEqual(Array.from((await sim.correct!(z1, {tau: 0})).data), Array.from(z1.data))
      // Sampling from the noise mean (the default) is deterministic whatever the seed; a seeded draw is not.
      const mean = Array.from((await sim.correct!(z1, {seed: 1})).data)
      assert.deepEqual(Array.from((await sim.correct!(z1, {seed: 2})).data), mean)
      assert.deepEqual(Array.from((await sim.correct!(z1, {noise: 'mean'})).data), mean)
      assert.notDeepEqual(Array.from(corrected.data), mean)
      assert.notDeepEqual(Array.from((await sim.correct!(z1, {noise: 'sample', seed: 2})).data), Array.from(corrected.data))
      assert.notDeepEqual(mean, Array.from(z1.data))
      const back = await sim.decode(z)
      assert.deepEqual(back.shape, [2, 32, 1])
      assert.ok(back.data.every(Number.isFinite))
      assert.ok(sim.steady !== null)
    } finally {
      sim.dispose()
    }
  })
})
