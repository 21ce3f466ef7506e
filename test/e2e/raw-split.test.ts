import assert from 'node:assert/strict'
import {readFile, symlink} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, it} from 'node:test'

import {createPdebenchWriter} from '../../src/data/index.js'
import {REPO_ROOT, hasStackTrace, runCli, tempDir, writeFiles} from '../helpers.js'

/** A file in PDEBench's raw layout (`tensor` [N, T, X], coordinates), written by our writer. */
async function writeRaw(path: string, n: number, nt = 5, nx = 16): Promise<void> {
  const w = await createPdebenchWriter(path, {
    nt, nx, x: Array.from({length: nx}, (_, i) => (i + 0.5) / nx), t: Array.from({length: nt + 1}, (_, i) => i * 0.1),
  })
  for (let s = 0; s < n; s++) w.append(Float32Array.from({length: nt * nx}, (_, j) => Math.sin(s + j / 7)))
  await w.close()
}

/** A tiny training config with no data.root of its own: the root comes from $PDEBENCH_ROOT. */
const CONFIG = `include: ${join(REPO_ROOT, 'configs', 'defaults.yaml')}
data: {task: burgers1d}
latent: {dim: 8, tokens: 4}
autoencoder: {hidden_dim: 16, num_layers: 1, fourier_features: 2}
operator:
  pdet: {hidden_dim: 16, depths: [1], group_size: 8, num_heads: 2, mlp_ratio: 2.0}
training: {batch_size: 8, latent_cache_dir: cache}
stages:
  autoencoder: {epochs: 1}
  operator: {epochs: 1}
evaluation: {enabled: false}
`

describe('a data root holding only 1D_Burgers_Sols_Nu0.01.hdf5 (via $PDEBENCH_ROOT)', () => {
  it('data validate, dry-run and train find it, split it by sample index and report the counts', {timeout: 300_000}, async (t) => {
    const dir = await tempDir(t, 'ups-e2e-raw-')
    const root = join(dir, 'pdebench')
    await writeRaw(join(root, '1D_Burgers_Sols_Nu0.01.hdf5'), 40)
    await writeFiles(dir, {'raw.yaml': CONFIG})
    const env = {PDEBENCH_ROOT: root}

    const v = await runCli(['data', 'validate', 'raw.yaml'], {cwd: dir, env})
    assert.equal(v.code, 0, v.stdout + v.stderr)
    assert.match(v.stdout, /1D_Burgers_Sols_Nu0\.01\.hdf5: 40 samples split by index \(contiguous\): train 34 \[0, 34\)/)
    assert.match(v.stdout, /✅ Data is valid/)
    const vj = await runCli(['data', 'validate', 'raw.yaml', '--all-splits', '--json'], {cwd: dir, env})
    assert.equal(vj.code, 0, vj.stderr)
    assert.deepEqual(JSON.parse(vj.stdout).files.map((f: {split: string; numSamples: number}) => [f.split, f.numSamples]), [['train', 34], ['val', 2], ['test', 4]])

    const d = await runCli(['dry-run', 'raw.yaml', '--static', '--gpu', 'local', '--json'], {cwd: dir, env})
    assert.equal(d.code, 0, d.stderr)
    const dry = JSON.parse(d.stdout)
    assert.match(dry.steps.find((s: {step: string}) => s.step === 'data check').detail, /burgers1d train 34/)
    assert.equal(dry.estimate.data.source, 'data')
    assert.equal(dry.estimate.data.trainSamples, 34)

    // A non-default split reaches the training loader and the metadata.
    const tr = await runCli(['train', 'raw.yaml', '--backend', 'wasm', '--run-dir', 'run', '--json', '--set', 'data.raw_split.val=0.25'], {cwd: dir, env, timeoutMs: 240_000})
    assert.equal(tr.code, 0, tr.stderr)
    assert.match(tr.stderr, /Data: 26 train trajectories/)
    const meta = JSON.parse(await readFile(join(dir, 'run', 'metadata.json'), 'utf8'))
    const src = meta.data_source.tasks[0]
    assert.equal(meta.data_source.root, root)
    assert.equal(src.kind, 'raw')
    assert.equal(src.file.path, join(root, '1D_Burgers_Sols_Nu0.01.hdf5'))
    assert.deepEqual(src.counts, {train: 26, val: 10, test: 4})
    assert.deepEqual(src.ranges, {train: [[0, 26]], val: [[26, 36]], test: [[36, 40]]})
    assert.deepEqual({val: src.val, test: src.test, seed: src.seed}, {val: 0.25, test: 0.1, seed: null})
  })

  it('several release files: exit 2 naming them, until data.file chooses one', async (t) => {
    const dir = await tempDir(t, 'ups-e2e-raw-')
    const root = join(dir, 'pdebench')
    await writeRaw(join(root, '1D_Burgers_Sols_Nu0.01.hdf5'), 10)
    await writeRaw(join(root, '1D_Burgers_Sols_Nu0.1.hdf5'), 20)
    await writeFiles(dir, {'raw.yaml': CONFIG})
    const env = {PDEBENCH_ROOT: root}
    const r = await runCli(['data', 'validate', 'raw.yaml'], {cwd: dir, env})
    assert.equal(r.code, 2, r.stdout + r.stderr)
    assert.match(r.stderr, /1D_Burgers_Sols_Nu0\.01\.hdf5, 1D_Burgers_Sols_Nu0\.1\.hdf5/)
    assert.match(r.stderr, /data\.file/)
    assert.ok(!hasStackTrace(r.stderr))
    const ok = await runCli(['data', 'validate', 'raw.yaml', '--set', 'data.file=1D_Burgers_Sols_Nu0.1.hdf5'], {cwd: dir, env})
    assert.equal(ok.code, 0, ok.stdout + ok.stderr)
    assert.match(ok.stdout, /1D_Burgers_Sols_Nu0\.1\.hdf5: 20 samples split by index/)
  })
})

describe('ups data validate: one file as every split', () => {
  it('the same file symlinked as train, val and test fails with exit 1, naming both files and the fix', async (t) => {
    const dir = await tempDir(t, 'ups-e2e-raw-')
    await writeRaw(join(dir, '1D_Burgers_Sols_Nu0.01.hdf5'), 6)
    for (const s of ['train', 'val', 'test']) await symlink(join(dir, '1D_Burgers_Sols_Nu0.01.hdf5'), join(dir, `burgers1d_${s}.h5`))
    const r = await runCli(['data', 'validate', '--data-root', dir, '--task', 'burgers1d'], {cwd: dir})
    assert.equal(r.code, 1, r.stdout + r.stderr)
    assert.match(r.stdout, /disjoint: .*burgers1d_train\.h5 \(train\) and .*burgers1d_val\.h5 \(val\) are the same file/)
    assert.match(r.stdout, /Fix: /)
    assert.match(r.stdout, /❌ Data is invalid/)
  })

  it('validating only the train split still finds that val and test are the same file', async (t) => {
    const dir = await tempDir(t, 'ups-e2e-raw-')
    await writeRaw(join(dir, 'burgers1d_train.h5'), 6)
    for (const s of ['val', 'test']) await symlink(join(dir, 'burgers1d_train.h5'), join(dir, `burgers1d_${s}.h5`))
    const r = await runCli(['data', 'validate', '--data-root', dir, '--task', 'burgers1d', '--split', 'train'], {cwd: dir})
    assert.equal(r.code, 1, r.stdout + r.stderr)
    assert.match(r.stdout, /disjoint: .*burgers1d_train\.h5 \(train\) and .*burgers1d_val\.h5 \(val\) are the same file/)
    assert.match(r.stdout, /burgers1d_test\.h5 \(test\)/)
  })
})

describe('a raw file named by data.file, with a seeded split, streamed to data-parallel replicas', () => {
  it('worker threads open the same split of the same file as the main thread', {timeout: 300_000}, async (t) => {
    const dir = await tempDir(t, 'ups-e2e-raw-')
    const root = join(dir, 'pdebench')
    // Not a release name: only data.file leads to it, so a worker that lost the config's choice finds no data.
    await writeRaw(join(root, 'my_burgers.hdf5'), 24)
    await writeFiles(dir, {'raw.yaml': CONFIG})
    const args = ['train', 'raw.yaml', '--backend', 'cpu', '--run-dir', 'run', '--json',
      '--set', 'data.file=my_burgers.hdf5', '--set', 'data.raw_split.seed=7',
      '--set', 'data.memory_budget_mb=0.004', '--set', 'training.accum_steps=2']
    const r = await runCli(args, {cwd: dir, env: {PDEBENCH_ROOT: root, UPS_TRAIN_WORKERS: '2'}, timeoutMs: 240_000})
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /streamed from disk in blocks/)
    assert.match(r.stderr, /Stage autoencoder: data-parallel: 2 replicas/)
    const meta = JSON.parse(await readFile(join(dir, 'run', 'metadata.json'), 'utf8'))
    assert.equal(meta.data_source.tasks[0].seed, 7)
    assert.equal(meta.data_source.tasks[0].file.path, join(root, 'my_burgers.hdf5'))
  })
})
