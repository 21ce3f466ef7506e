/**
 * Quality benchmark (minutes, not a CI test): generate 1D Burgers data (nu 0.01, 256 points,
 * a few hundred trajectories), train configs/train_burgers_32dim.yaml on CPU within a time
 * budget, evaluate on the test split, and write bench/results/quality.json. The goal: one-step
 * nRMSE at least 5x better than persistence, and the 20-step rollout nRMSE reported.
 * The training engine is reached through `Trainer` (default: trainPipeline, as `ups train` runs it),
 * the simulator through loadSimulatorForEval, so this file needs no change when they land.
 * Run alone: node --import tsx bench/quality.ts [--samples 300] [--budget-minutes 30]
 */
import {existsSync} from 'node:fs'
import {mkdir} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'

import {loadConfig} from '../src/config/index.js'
import {trainingConfigHash} from '../src/config/resolve.js'
import type {UpsConfig} from '../src/config/schema.js'
import {generateDataset, openDataset} from '../src/data/index.js'
import {evaluate, type EvalResult, loadSimulatorForEval, writeEvalReport} from '../src/training/eval-index.js'
import {writeJsonAtomic} from '../src/util/fs.js'

/** Trains `config` into `checkpointsDir`, stopping (with its best checkpoints saved) by the budget. */
export type Trainer = (config: UpsConfig, options: {checkpointsDir: string; timeBudgetSeconds: number; log: (line: string) => void}) => Promise<void>

export interface QualityBenchOptions {
  samples?: number
  nx?: number
  nt?: number
  nu?: number
  seed?: number
  budgetMinutes?: number
  rollout?: number
  workDir?: string
  resultsPath?: string
  trainer?: Trainer
  /** Extra config overrides (`key=value`, as --set), applied after the data root. */
  overrides?: string[]
  /** Reuse the data in workDir when it is already there (default: generate afresh). */
  reuseData?: boolean
  /** Default: loadSimulatorForEval (the engine). */
  loadSimulator?: typeof loadSimulatorForEval
  log?: (line: string) => void
}

export interface QualityBenchResult {
  task: string
  data: {samples: number; nx: number; nt: number; nu: number; seed: number}
  config: string
  configHash: string
  budgetMinutes: number
  trainSeconds: number
  evalSeconds: number
  testSamples: number
  oneStepNrmse: number
  persistenceOneStepNrmse: number
  /** persistence nRMSE / model nRMSE; the goal is >= 5. */
  oneStepImprovementVsPersistence: number | null
  goalMet: boolean
  rolloutSteps: number
  rolloutNrmse: number
  finalStepNrmse: number | null
  linearOneStepNrmse: number | null
  reconstructionNrmse: number
  node: string
  finishedAt: string
}

/**
 * The real engine: `ups train`'s trainPipeline into a run directory whose checkpoints/ is
 * `checkpointsDir`. It has no time budget of its own: the config's epochs decide the length, and
 * the bench reports the time it took against the budget.
 */
async function defaultTrainer(): Promise<Trainer> {
  const [{trainPipeline, prepareTrainRunDir}, {createLogger}] = await Promise.all([import('../src/training/index.js'), import('../src/util/logger.js')])
  return async (config, o) => {
    const {dir} = await prepareTrainRunDir({path: dirname(o.checkpointsDir), resume: true, runsRoot: dirname(o.checkpointsDir), config, now: new Date(), randomHex: () => '0000'})
    await trainPipeline(config, {
      runDir: dir, backend: 'auto', stage: 'all', resume: true,
      deps: {clock: () => Date.now(), logger: createLogger({level: 'info'}), env: process.env, cwd: process.cwd()},
    })
  }
}

export async function benchQuality(options: QualityBenchOptions = {}): Promise<QualityBenchResult> {
  const log = options.log ?? ((l: string) => console.log(l))
  const data = {samples: options.samples ?? 300, nx: options.nx ?? 256, nt: options.nt ?? 201, nu: options.nu ?? 0.01, seed: options.seed ?? 0}
  const budgetMinutes = options.budgetMinutes ?? 30
  const rollout = options.rollout ?? 20
  const work = resolve(options.workDir ?? join('artifacts', 'bench', 'quality'))
  const root = join(work, 'data')
  const checkpointsDir = join(work, 'checkpoints')
  await mkdir(checkpointsDir, {recursive: true})

  log(`generating burgers1d: ${data.samples} trajectories, nx ${data.nx}, nt ${data.nt}, nu ${data.nu}`)
  if (!(options.reuseData && existsSync(join(root, 'burgers1d_test.h5')))) {
    await generateDataset({task: 'burgers1d', outDir: root, ...data, splits: {train: 0.8, val: 0.1, test: 0.1}})
  }

  const configPath = join('configs', 'train_burgers_32dim.yaml')
  const {config} = await loadConfig(configPath, {overrides: [`data.root=${root}`, 'logging.wandb.enabled=false', ...(options.overrides ?? [])]})
  const trainer = options.trainer ?? (await defaultTrainer())
  const t0 = performance.now()
  await trainer(config, {checkpointsDir, timeBudgetSeconds: budgetMinutes * 60, log})
  const trainSeconds = (performance.now() - t0) / 1000
  log(`trained in ${(trainSeconds / 60).toFixed(1)} min`)

  const timeStride = config.training?.time_stride ?? 1
  const simulator = await (options.loadSimulator ?? loadSimulatorForEval)(config, checkpointsDir)
  const test = await openDataset(root, 'burgers1d', 'test', {timeStride})
  const train = await openDataset(root, 'burgers1d', 'train', {timeStride})
  let r: EvalResult
  const t1 = performance.now()
  try {
    r = await evaluate({config, dataset: test, trainDataset: train, simulator, split: 'test', rollout, tau: config.evaluation?.tau ?? 0.5, useCorrector: true}, {now: () => performance.now()})
  } finally {
    test.close()
    train.close()
    simulator.dispose?.()
  }
  const evalSeconds = (performance.now() - t1) / 1000
  const finishedAt = new Date()
  await writeEvalReport(r, join(work, 'eval'), {finishedAt, checkpointsDir, configPath})
  const ratio = r.ratios.persistence.oneStep
  const result: QualityBenchResult = {
    task: 'burgers1d', data, config: configPath, configHash: trainingConfigHash(config), budgetMinutes,
    trainSeconds: round(trainSeconds), evalSeconds: round(evalSeconds), testSamples: r.samples,
    oneStepNrmse: r.model.oneStep.nrmse,
    persistenceOneStepNrmse: r.baselines.persistence.oneStep.nrmse,
    oneStepImprovementVsPersistence: ratio,
    goalMet: ratio !== null && ratio >= 5,
    rolloutSteps: r.rolloutSteps,
    rolloutNrmse: r.model.rollout.overall.nrmse,
    finalStepNrmse: r.model.rollout.nrmsePerStep.at(-1) ?? null,
    linearOneStepNrmse: 'skipped' in r.baselines.linear ? null : r.baselines.linear.oneStep.nrmse,
    reconstructionNrmse: r.reconstruction.nrmse,
    node: process.version,
    finishedAt: finishedAt.toISOString(),
  }
  await writeJsonAtomic(options.resultsPath ?? join('bench', 'results', 'quality.json'), result)
  log(`one-step nRMSE ${result.oneStepNrmse.toPrecision(3)} vs persistence ${result.persistenceOneStepNrmse.toPrecision(3)} (${ratio?.toFixed(1) ?? '-'}x, goal 5x: ${result.goalMet ? 'met' : 'NOT met'}); ${r.rolloutSteps}-step rollout nRMSE ${result.rolloutNrmse.toPrecision(3)}`)
  return result
}

const round = (v: number) => Number(v.toFixed(1))

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name)
    return i > 0 ? Number(process.argv[i + 1]) : undefined
  }
  const sets = process.argv.flatMap((a, i) => (a === '--set' ? [process.argv[i + 1]] : []))
  await benchQuality({samples: arg('--samples'), budgetMinutes: arg('--budget-minutes'), overrides: sets, reuseData: process.argv.includes('--reuse-data')})
}
