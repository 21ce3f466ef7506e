import assert from 'node:assert/strict'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {generateDataset} from '../../../src/data/index.js'
import {createRunDir} from '../../../src/tracking/rundir.js'
import {saveCheckpoint} from '../../../src/training/checkpoint.js'
import {type EvalMirror, inspectCheckpoints, publishEvalToRun, runEvaluation} from '../../../src/training/eval-index.js'
import {UserError} from '../../../src/util/errors.js'
import {shiftSimulator} from '../../fixtures/fake-simulator.js'
import {tempDir, writeFiles} from '../../helpers.js'

const NX = 32

async function setup(t: import('node:test').TestContext) {
  const dir = await tempDir(t)
  const data = join(dir, 'data')
  await generateDataset({task: 'burgers1d', outDir: data, samples: 16, nx: NX, nt: 9, nu: 0.02, seed: 3, splits: {train: 0.5, val: 0.25, test: 0.25}})
  await writeFiles(dir, {
    'cfg.yaml': `data: {task: burgers1d, root: ${data}}\nlatent: {dim: 4, tokens: 8}\noperator: {pdet: {hidden_dim: 8, depths: [1], group_size: 4, num_heads: 1}}\nevaluation: {split: test, rollout_steps: 4, max_samples: 3}\n`,
  })
  const run = await createRunDir(join(dir, 'runs'), 'run_20250101_120000_ab12')
  const tensors = [{name: 'w', shape: [2], dtype: 'float32' as const, data: Float32Array.from([1, 2])}]
  await saveCheckpoint(join(run.paths.checkpoints, 'autoencoder.ckpt'), {tensors, epoch: 1, step: 10})
  await saveCheckpoint(join(run.paths.checkpoints, 'operator.ckpt'), {tensors, epoch: 2, step: 20})
  return {dir, data, run, config: join(dir, 'cfg.yaml')}
}

const clockDeps = () => {
  let ms = 0
  return {now: () => new Date('2025-02-03T04:05:06Z'), clock: () => (ms += 10)}
}

test('runEvaluation on real HDF5 data: checks checkpoints, writes into <run>/eval/<split>, updates the run summary', async (t) => {
  const {run, config} = await setup(t)
  let loadedFrom = ''
  const r = await runEvaluation({configPath: config, checkpointsDir: run.paths.checkpoints}, {
    ...clockDeps(),
    loadSimulator: async (_c, d) => {
      loadedFrom = d
      const sim = shiftSimulator({nx: NX, tokens: 8, shift: 1, normStats: {mean: [0], std: [1]}})
      sim.hashes = {operator: 'c'.repeat(64)}
      return sim
    },
  })
  assert.equal(loadedFrom, run.paths.checkpoints)
  assert.equal(r.outDir, join(run.path, 'eval', 'test'))
  assert.equal(r.runDir, run.path)
  assert.equal(r.evaluation.samples, 3) // evaluation.max_samples from the config
  assert.equal(r.evaluation.rolloutSteps, 4)
  assert.ok(!('skipped' in r.evaluation.baselines.linear), 'the train split exists, so the linear baseline is fitted')
  // Hashes: the simulator's win; stages it does not report come from the verified manifests.
  assert.equal(r.evaluation.checkpointHashes.operator, 'c'.repeat(64))
  assert.equal(r.evaluation.checkpointHashes.autoencoder, r.checkpoints.stages.autoencoder.weightsSha256)
  const results = JSON.parse(await readFile(r.resultsPath, 'utf8'))
  assert.equal(results.finished_at, '2025-02-03T04:05:06.000Z')
  assert.equal(results.task, 'burgers1d')
  const summary = JSON.parse(await readFile(run.paths.summary, 'utf8'))
  assert.equal(summary['eval/one_step/nrmse'], r.evaluation.model.oneStep.nrmse)
  assert.ok(summary['eval/persistence/rollout/nrmse'] > 0)
  assert.deepEqual(r.wandb, {mirrored: false, reason: 'W&B is disabled in the config'})
  // Flags win over the config.
  const r2 = await runEvaluation({configPath: config, checkpointsDir: run.paths.checkpoints, split: 'val', rollout: 2, maxSamples: 2, outDir: join(run.path, 'x')}, {
    ...clockDeps(), loadSimulator: async () => shiftSimulator({nx: NX, tokens: 8, shift: 0}),
  })
  assert.equal(r2.evaluation.split, 'val')
  assert.equal(r2.evaluation.rolloutSteps, 2)
  assert.equal(r2.outDir, join(run.path, 'x'))
})

test('publishEvalToRun sends eval/ metrics and the files to the mirror', async (t) => {
  const {run, config} = await setup(t)
  const r = await runEvaluation({configPath: config, checkpointsDir: run.paths.checkpoints}, {...clockDeps(), loadSimulator: async () => shiftSimulator({nx: NX, tokens: 8, shift: 0})})
  const sent: {summary?: Record<string, unknown>; files?: string[]} = {}
  const mirror: EvalMirror = {summary: async (v) => void (sent.summary = v), uploadFiles: async (f) => void (sent.files = f)}
  const {config: cfg} = await (await import('../../../src/config/index.js')).loadConfig(config)
  const out = await publishEvalToRun(run, r.evaluation, {outDir: r.outDir, resultsPath: r.resultsPath, reportPath: r.reportPath, files: r.files, plots: []}, {config: cfg, mirror})
  assert.deepEqual(out, {mirrored: true})
  assert.ok(Object.keys(sent.summary!).length > 20 && Object.keys(sent.summary!).every((k) => k.startsWith('eval/')))
  assert.ok(sent.files!.some((f) => f.endsWith('rollout_error.png')) && sent.files!.some((f) => f.endsWith('results.json')))
})

test('missing, empty and corrupt checkpoint folders are clear user errors', async (t) => {
  const dir = await tempDir(t)
  await assert.rejects(inspectCheckpoints(join(dir, 'nope')), (e: UserError) => e.code === 'EVAL_CHECKPOINTS_MISSING' && e.exitCode === 2)
  await mkdir(join(dir, 'empty'))
  await assert.rejects(inspectCheckpoints(join(dir, 'empty')), (e: UserError) => e.code === 'EVAL_NO_CHECKPOINTS' && e.exitCode === 2)
  const bad = join(dir, 'bad', 'operator.ckpt')
  await mkdir(bad, {recursive: true})
  await writeFile(join(bad, 'manifest.json'), '{not json')
  await writeFile(join(bad, 'weights.bin'), 'xx')
  await assert.rejects(inspectCheckpoints(join(dir, 'bad')), (e: UserError) => e.code === 'EVAL_CHECKPOINT_CORRUPT' && e.exitCode === 1 && /operator\.ckpt is corrupt/.test(e.message))
})

