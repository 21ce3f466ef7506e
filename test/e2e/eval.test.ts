import assert from 'node:assert/strict'
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {saveCheckpoint} from '../../src/training/checkpoint.js'
import {hasStackTrace, REPO_ROOT, runCli, tempDir} from '../helpers.js'

const CONFIG = join(REPO_ROOT, 'configs', 'local_smoke.yaml')

test('ups eval: a missing checkpoint folder exits 2 with a clear message, no stack', async (t) => {
  const dir = await tempDir(t)
  const r = await runCli(['eval', CONFIG, '--checkpoints', join(dir, 'nope')], {cwd: dir})
  assert.equal(r.code, 2, r.stderr)
  assert.match(r.stderr, /checkpoint folder .*nope does not exist/)
  assert.ok(!hasStackTrace(r.stderr), r.stderr)
  const j = await runCli(['eval', CONFIG, '--checkpoints', join(dir, 'nope'), '--json'], {cwd: dir})
  assert.equal(j.code, 2)
  assert.equal(JSON.parse(j.stdout).error.code, 'EVAL_CHECKPOINTS_MISSING')
})

test('ups eval: a corrupt checkpoint exits 1 naming it', async (t) => {
  const dir = await tempDir(t)
  const ckpt = join(dir, 'checkpoints', 'autoencoder.ckpt')
  await mkdir(ckpt, {recursive: true})
  await writeFile(join(ckpt, 'manifest.json'), '{"format": "ups-checkpoint"')
  const r = await runCli(['eval', CONFIG, '--checkpoints', join(dir, 'checkpoints'), '--json'], {cwd: dir})
  assert.equal(r.code, 1, r.stderr)
  const err = JSON.parse(r.stdout).error
  assert.equal(err.code, 'EVAL_CHECKPOINT_CORRUPT')
  assert.match(err.message, /autoencoder\.ckpt is corrupt or incomplete/)
})

test('ups eval: usage errors exit 2', async (t) => {
  const dir = await tempDir(t)
  const tau = await runCli(['eval', CONFIG, '--checkpoints', dir, '--tau', '2'], {cwd: dir})
  assert.equal(tau.code, 2)
  assert.match(tau.stderr, /--tau must be a number in \[0, 1\]/)
  const missing = await runCli(['eval', CONFIG], {cwd: dir})
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /checkpoints/)
  const noise = await runCli(['eval', CONFIG, '--checkpoints', dir, '--corrector-noise', 'gaussian'], {cwd: dir})
  assert.equal(noise.code, 2)
  assert.match(noise.stderr, /mean, sample/)
})

test('ups eval: valid checkpoints reach the engine loader', async (t) => {
  const dir = await tempDir(t)
  const tensors = [{name: 'w', shape: [1], dtype: 'float32' as const, data: Float32Array.from([1])}]
  await saveCheckpoint(join(dir, 'checkpoints', 'operator.ckpt'), {tensors, epoch: 1, step: 1})
  const r = await runCli(['eval', CONFIG, '--checkpoints', join(dir, 'checkpoints'), '--json'], {cwd: dir})
  const err = JSON.parse(r.stdout).error
  // A checkpoint that is not from a trained run (no training metadata): a clear usage error.
  assert.equal(err.code, 'SIM_NO_METADATA', JSON.stringify(err))
  assert.equal(r.code, 2)
  assert.ok(!hasStackTrace(r.stdout + r.stderr))
})
