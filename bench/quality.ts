/**
 * Quality benchmark (minutes, not a CI test): generate 1D Burgers data (nu 0.01, 256 points,
 * a few hundred trajectories), train configs/train_burgers_32dim.yaml on CPU within a time
 * budget, evaluate on the test split, and write bench/results/quality.json. The goal: one-step
 * nRMSE at least 5x better than persistence, and the 20-step rollout nRMSE reported.
 * The training engine is reached through `Trainer` (default: trainPipeline, as `ups train` runs it),
 * the simulator through loadSimulatorForEval, so this file needs no change when they land.
 * Run alone: node --import tsx bench/quality.ts [--samples 500] [--budget-minutes 30] [--reuse-data]
 *   [--no-fit] [--set key=value ...] (--no-fit: the config's epochs as they are, or as --set puts them)
 */
import {existsSync} from 'node:fs'
import {mkdir} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'

import {loadConfig, resolveStage, type StageName} from '../src/config/index.js'
import {trainingConfigHash} from '../src/config/resolve.js'
import type {UpsConfig} from '../src/config/schema.js'
import {enabledStagesOf} from '../src/pipeline/stages.js'
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
  /** Scale the config's epochs to fit budgetMinutes (default true). */
  fitEpochs?: boolean
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
  /** Epochs trained per stage (the config's, fitted to the budget). */
  epochs: Record<string, number>
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
  /** Which corrector the main figures used (null: none trained). */
  corrector: string | null
  /** The same evaluation without the corrector (`ups eval --no-corrector`). */
  operatorOnly: {oneStepNrmse: number; oneStepImprovementVsPersistence: number | null; rolloutNrmse: number; finalStepNrmse: number | null}
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
  const data = {samples: options.samples ?? 500, nx: options.nx ?? 256, nt: options.nt ?? 201, nu: options.nu ?? 0.01, seed: options.seed ?? 0}
  const budgetMinutes = options.budgetMinutes ?? 30
  const rollout = options.rollout ?? 20
  const work = resolve(options.workDir ?? join('artifacts', 'bench', 'quality'))
  const root = join(work, 'data')
  const checkpointsDir = join(work, 'checkpoints')
  await mkdir(checkpointsDir, {recursive: true})

  if (!(options.reuseData && existsSync(join(root, 'burgers1d_test.h5')))) {
    log(`generating burgers1d: ${data.samples} trajectories, nx ${data.nx}, nt ${data.nt}, nu ${data.nu}`)
    await generateDataset({task: 'burgers1d', outDir: root, ...data, splits: {train: 0.8, val: 0.1, test: 0.1}})
  }

  const configPath = join('configs', 'train_burgers_32dim.yaml')
  const baseOverrides = [`data.root=${root}`, 'logging.wandb.enabled=false', ...(options.overrides ?? [])]
  const loaded = await loadConfig(configPath, {overrides: baseOverrides})
  // The config's epochs take ~2 h on 2 CPU cores; fit them to the budget with the dry-run's own
  // measured estimate (see fitEpochsToBudget), unless the caller set them.
  const plan = options.fitEpochs === false ? null : await planEpochs(loaded.config, budgetMinutes * 60, log)
  const {config} = plan ? await loadConfig(configPath, {overrides: [...baseOverrides, ...plan.overrides]}) : loaded
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
  let plain: EvalResult
  const t1 = performance.now()
  try {
    const run = (useCorrector: boolean) =>
      evaluate({config, dataset: test, trainDataset: train, simulator, split: 'test', rollout, tau: config.evaluation?.tau ?? 0.5, useCorrector}, {now: () => performance.now()})
    // As `ups eval` runs it (with the corrector), and the operator alone (--no-corrector).
    r = await run(true)
    plain = await run(false)
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
    epochs: Object.fromEntries(enabledStagesOf(config).map((s) => [s, resolveStage(config, s).epochs])),
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
    corrector: r.corrector.kind,
    operatorOnly: {
      oneStepNrmse: plain.model.oneStep.nrmse,
      oneStepImprovementVsPersistence: plain.ratios.persistence.oneStep,
      rolloutNrmse: plain.model.rollout.overall.nrmse,
      finalStepNrmse: plain.model.rollout.nrmsePerStep.at(-1) ?? null,
    },
    node: process.version,
    finishedAt: finishedAt.toISOString(),
  }
  await writeJsonAtomic(options.resultsPath ?? join('bench', 'results', 'quality.json'), result)
  log(`one-step nRMSE ${result.oneStepNrmse.toPrecision(3)} vs persistence ${result.persistenceOneStepNrmse.toPrecision(3)} (${ratio?.toFixed(1) ?? '-'}x, goal 5x: ${result.goalMet ? 'met' : 'NOT met'}); ${r.rolloutSteps}-step rollout nRMSE ${result.rolloutNrmse.toPrecision(3)}; operator alone: one-step ${result.operatorOnly.oneStepNrmse.toPrecision(3)} (${result.operatorOnly.oneStepImprovementVsPersistence?.toFixed(1) ?? '-'}x), rollout ${result.operatorOnly.rolloutNrmse.toPrecision(3)}`)
  return result
}

const round = (v: number) => Number(v.toFixed(1))

/** Per stage: the config's epochs and the measured seconds one epoch takes on this machine. */
export interface StageCost {
  stage: string
  epochs: number
  secondsPerEpoch: number
}

/**
 * Epochs per stage so training fits `budgetSeconds` (after `fixedSeconds` of latent cache,
 * evaluation and start-up). A stage whose configured epochs cost at most `keepShare` of the
 * budget keeps them (the autoencoder: minutes, and its reconstruction error is the floor of
 * every later error: 2 of its 10 epochs left it near the one-step goal by itself); the others share what is left in proportion to their configured time, at
 * least one epoch each. Pure.
 */
export function fitEpochsToBudget(stages: StageCost[], budgetSeconds: number, fixedSeconds = 0, keepShare = 0.2): Record<string, number> {
  const out: Record<string, number> = {}
  let left = budgetSeconds - fixedSeconds
  const scaled: StageCost[] = []
  for (const s of stages) {
    const full = s.epochs * s.secondsPerEpoch
    if (full <= keepShare * budgetSeconds) {
      out[s.stage] = s.epochs
      left -= full
    } else {
      scaled.push(s)
    }
  }
  const fullScaled = scaled.reduce((a, s) => a + s.epochs * s.secondsPerEpoch, 0)
  const factor = fullScaled > 0 ? Math.min(1, Math.max(0, left) / fullScaled) : 1
  for (const s of scaled) out[s.stage] = Math.max(1, Math.floor(s.epochs * factor))
  return out
}

/** Measures the config's steps (as `ups dry-run --gpu local` does) and fits its epochs to the budget. */
async function planEpochs(config: UpsConfig, budgetSeconds: number, log: (line: string) => void): Promise<{overrides: string[]; epochs: Record<string, number>}> {
  const {estimateRun} = await import('../src/pipeline/estimate.js')
  const est = await estimateRun(config, {gpu: 'local', evalPasses: 1}, {cwd: process.cwd(), now: () => performance.now()})
  const costs = est.stages.map((s) => ({stage: s.stage, epochs: s.epochs, secondsPerEpoch: (s.seconds - s.warmupSeconds) / Math.max(1, s.epochs)}))
  const fixed = est.latentCacheSeconds + est.evaluation.seconds + est.overheadSeconds
  const epochs = fitEpochsToBudget(costs, budgetSeconds, fixed)
  const overrides: string[] = []
  for (const [stage, e] of Object.entries(epochs)) {
    overrides.push(`stages.${stage}.epochs=${e}`)
    // A cosine schedule spans the epochs actually trained.
    if (resolveStage(config, stage as StageName).scheduler.name === 'cosineannealinglr') overrides.push(`stages.${stage}.scheduler.t_max=${e}`)
  }
  log(`budget ${(budgetSeconds / 60).toFixed(0)} min (the config's epochs: ${(est.totalSeconds / 60).toFixed(0)} min here): epochs ${Object.entries(epochs).map(([s, e]) => `${s} ${e}`).join(', ')}`)
  return {overrides, epochs}
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name)
    return i > 0 ? Number(process.argv[i + 1]) : undefined
  }
  const sets = process.argv.flatMap((a, i) => (a === '--set' ? [process.argv[i + 1]] : []))
  await benchQuality({samples: arg('--samples'), budgetMinutes: arg('--budget-minutes'), overrides: sets, reuseData: process.argv.includes('--reuse-data'), fitEpochs: !process.argv.includes('--no-fit')})
}
