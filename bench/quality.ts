/**
 * Quality benchmark (minutes, not a CI test): generate 1D Burgers data (nu 0.01, 256 points,
 * a few hundred trajectories), train configs/train_burgers_32dim.yaml on CPU within a time
 * budget, evaluate on the test split, and write bench/results/quality.json. The goal: one-step
 * nRMSE at least 5x better than persistence, and the 20-step rollout nRMSE reported.
 * The training engine is reached through `Trainer` (default: trainPipeline, as `ups train` runs it),
 * the simulator through loadSimulatorForEval, so this file needs no change when they land.
 * Run alone: node --import tsx bench/quality.ts [--samples 500] [--budget-minutes 30] [--reuse-data] [--resume]
 *   [--no-fit] [--set key=value ...] (--no-fit: the config's epochs as they are, or as --set puts them)
 */
import {existsSync} from 'node:fs'
import {mkdir, readdir, rm} from 'node:fs/promises'
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
  /** Continue the training in workDir (default: start afresh: a finished earlier run would be reused as it is). */
  resume?: boolean
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
  /** Where its sampling started (evaluation.corrector_noise; null without a corrector). */
  correctorNoise: string | null
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
  if (!options.resume) {
    // Training resumes from whatever run directory it finds: a fresh bench leaves none behind.
    const entries = await readdir(work).catch(() => [])
    await Promise.all(entries.filter((e) => e !== 'data').map((e) => rm(join(work, e), {recursive: true, force: true})))
  }
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
    correctorNoise: r.corrector.noise,
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

/** Timed steps per stage when planning (the dry-run times 9). */
const PLAN_TIMED_STEPS = 30

/** Per stage: the config's epochs and the measured seconds one epoch takes on this machine. */
export interface StageCost {
  stage: string
  epochs: number
  secondsPerEpoch: number
}

/**
 * Epochs per stage so training fits `budgetSeconds` (after `fixedSeconds` of latent cache,
 * evaluation and start-up). The `fill` stage (the autoencoder: its epochs are cheap and its
 * reconstruction error is the floor of every later error) is reserved up to `fillShare` of the
 * budget; the other stages share the rest in proportion to their configured time, at least one
 * epoch each: rounded to the nearest, largest remainder first, where the rounding up still fits
 * (the operator's 3.7 epochs are 4, not 3, when a fourth fits), else down; then the fill stage
 * takes whatever is left, up to its configured epochs. Never more epochs than configured. Pure.
 */
export function fitEpochsToBudget(stages: StageCost[], budgetSeconds: number, fixedSeconds = 0, fillShare = 0.1, fill = 'autoencoder'): Record<string, number> {
  const out: Record<string, number> = {}
  const left = Math.max(0, budgetSeconds - fixedSeconds)
  const filler = stages.find((s) => s.stage === fill)
  const others = stages.filter((s) => s !== filler)
  const reserved = filler ? Math.min(filler.epochs * filler.secondsPerEpoch, fillShare * budgetSeconds) : 0
  const fullOthers = others.reduce((a, s) => a + s.epochs * s.secondsPerEpoch, 0)
  const factor = fullOthers > 0 ? Math.min(1, Math.max(0, left - reserved) / fullOthers) : 1
  for (const s of others) out[s.stage] = Math.max(1, Math.floor(s.epochs * factor))
  const spent = () => others.reduce((a, s) => a + out[s.stage] * s.secondsPerEpoch, 0)
  const byRemainder = [...others].sort((a, b) => ((b.epochs * factor) % 1) - ((a.epochs * factor) % 1))
  for (const s of byRemainder) {
    const share = s.epochs * factor
    if (share % 1 >= 0.5 && out[s.stage] < Math.ceil(share) && spent() + s.secondsPerEpoch <= left - reserved) out[s.stage] += 1
  }
  if (filler) out[filler.stage] = Math.max(1, Math.min(filler.epochs, Math.floor((left - spent()) / Math.max(1e-9, filler.secondsPerEpoch))))
  return out
}

/**
 * Measures the config's steps (as `ups dry-run --gpu local` does, with more timed steps: a 9-step
 * median of 0.3-0.5 s steps swung 20% between runs here) and fits its epochs to the budget.
 */
async function planEpochs(config: UpsConfig, budgetSeconds: number, log: (line: string) => void): Promise<{overrides: string[]; epochs: Record<string, number>}> {
  const [{estimateRun, dataShapeOf}, {measureModels}] = await Promise.all([import('../src/pipeline/estimate.js'), import('../src/pipeline/measure.js')])
  const now = () => performance.now()
  const shape = await dataShapeOf(config, process.cwd())
  const measured = await measureModels(config, shape, {measure: true, now, steps: PLAN_TIMED_STEPS})
  const est = await estimateRun(config, {gpu: 'local', evalPasses: 1, shape, measured}, {cwd: process.cwd(), now})
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
  await benchQuality({samples: arg('--samples'), budgetMinutes: arg('--budget-minutes'), overrides: sets, reuseData: process.argv.includes('--reuse-data'), resume: process.argv.includes('--resume'), fitEpochs: !process.argv.includes('--no-fit')})
}
