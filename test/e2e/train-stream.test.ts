/**
 * Training on data larger than data.memory_budget_mb: frames and latent cache streamed from disk
 * in blocks (here a few KB, so the tiny data streams), with data-parallel replicas reading their
 * own blocks; a crash and resume ends with the same weights as an uninterrupted streamed run.
 */
import assert from 'node:assert/strict'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {runCli, tempDir} from '../helpers.js'
import {tinyConfig, weightsSha} from './train-fixtures.js'

const STAGES = ['autoencoder', 'operator', 'diff_residual', 'consistency_distill', 'steady_prior']

describe('ups train with data larger than the memory budget', () => {
  it('streams frames and latents in blocks; crash + resume gives the same weights as one streamed run', async (t) => {
    const cwd = await tempDir(t)
    await writeFile(join(cwd, 'tiny.yaml'), tinyConfig('data'))
    // 768 bytes per trajectory of frames, 384 of latents: a 4 KB budget streams both.
    const args = (run: string) => ['train', 'tiny.yaml', '--backend', 'cpu', '--run-dir', run, '--set', 'data.memory_budget_mb=0.004', '--set', 'training.accum_steps=2']
    const env = {UPS_TRAIN_WORKERS: '2'}
    const ref = await runCli(args('ref'), {cwd, env})
    assert.equal(ref.code, 0, ref.stderr)
    assert.match(ref.stderr, /larger than data\.memory_budget_mb \(0\.004 MB\): streamed from disk in blocks of 1 trajectories/)
    assert.match(ref.stderr, /Latent cache .*burgers1d_train-[0-9a-f]{16}: built; larger than data\.memory_budget_mb: read from disk in blocks of 2 trajectories/)
    assert.match(ref.stderr, /Stage autoencoder: data-parallel: 2 replicas/)

    const crashed = await runCli(args('run'), {cwd, env: {...env, UPS_TEST_FAULT: 'crash:operator:2'}})
    assert.notEqual(crashed.code, 0)
    const resumed = await runCli(args('run'), {cwd, env})
    assert.equal(resumed.code, 0, resumed.stderr)
    assert.match(resumed.stderr, /Latent cache .*: reused \(1 chunk hash\(es\) verified\)/)
    for (const s of STAGES) {
      assert.equal(await weightsSha(join(cwd, 'run', 'checkpoints', `${s}.ckpt`)), await weightsSha(join(cwd, 'ref', 'checkpoints', `${s}.ckpt`)), `${s} differs after resume`)
    }
  })

  it('one trajectory larger than the budget allows is an error naming the knobs, not TRAIN_INTERNAL', async (t) => {
    const cwd = await tempDir(t)
    await writeFile(join(cwd, 'tiny.yaml'), tinyConfig('data'))
    const r = await runCli(['train', 'tiny.yaml', '--backend', 'cpu', '--run-dir', 'run', '--set', 'data.memory_budget_mb=0.001', '--json'], {cwd})
    assert.equal(r.code, 2, r.stderr)
    const err = JSON.parse(r.stdout).error ?? JSON.parse(r.stdout)
    assert.equal(err.code, 'TRAIN_MEMORY_BUDGET', r.stdout)
    assert.match(r.stdout + r.stderr, /data\.memory_budget_mb/)
    assert.match(r.stdout + r.stderr, /training\.time_stride/)
  })
})
