/**
 * `ups train`: the whole pipeline in one call.
 *   data (generated when data.generate is set and files are missing) -> train-split normalisation
 *   -> autoencoder -> latent cache -> operator -> diff_residual -> consistency_distill -> steady_prior
 * Finished stages (checkpoints/metadata.json) are not redone; an unfinished one resumes from its
 * newest valid checkpoint. Side effects (clock, logger, env, progress, W&B) come in as deps.
 */
import {readdir} from 'node:fs/promises'
import {availableParallelism} from 'node:os'
import {join, resolve} from 'node:path'

import {dataSourceOf, latentCacheConfigHash, resolveStage, STAGES, type StageName, tasksOf, trainingConfigHash, type UpsConfig} from '../config/index.js'
import {describeDataSources, ensureGeneratedData, renderDataSources, withDataSource} from '../data/index.js'
import {JsonlAppender, RUN_LOCK_FILE, withRunDirLock, type RunDir, historyWriter, updateMetadata, updateSummary, type WandbDeps, WandbMirror, wandbSettingsFromConfig} from '../tracking/index.js'
import {ExitCode, UserError, knownUserError} from '../util/errors.js'
import {describeHolder, isPidAlive, type LockInfo} from '../util/lock.js'
import {redactConfigSecrets} from '../util/secrets.js'
import {type BackendRequest, type ResolvedBackend, resolveBackend} from './backend.js'
import type {WebgpuAdapterInfo} from './webgpu.js'
import {closeLatentFiles, ensureLatentCache} from './cache.js'
import {loadCheckpoint, saveCheckpoint} from './checkpoint.js'
import {closeFrameStreams, DEFAULT_MEMORY_BUDGET_MB, loadTrainingData, type TrainingData} from './data.js'
import {resolveMicroBatch} from './micro-batch.js'
import {describeReplicas, ReplicaPool, startStageReplicas, resolveWorkers, trainReplicaRecipe} from './parallel/index.js'
import {type PipelineState, readPipelineState, type StageState, writePipelineState} from './pipeline-state.js'
import {buildAutoencoder, deriveSeed} from './stages/build.js'
import {bestPath, buildStage} from './stages/index.js'
import {type FaultPlan, type LoopLogger, runStage, type StageOutcome} from './stages/loop.js'
import type {EpochRecord, StageProgress} from './stages/types.js'
import {checkpointDirOf, clearStageCheckpoints, dataSizeError, formatEpochLine, latentCacheDirOf, outOfMemoryError, parseFault, removeOutsideTemps, restoreEpochRecord, trainDataRoot} from './train-helpers.js'

export type StageSelection = 'all' | StageName

export interface TrainDeps {
  /** Wall clock in ms since the epoch. */
  clock: () => number
  logger: LoopLogger & {error(obj: object, msg?: string): void}
  onProgress?: (p: StageProgress) => void
  env: Record<string, string | undefined>
  /** Relative data.root and training.latent_cache_dir resolve against this. */
  cwd: string
  /** W&B mirror deps; the mirror runs only when logging.wandb.enabled and these are given. */
  wandb?: WandbDeps
  /** Tests inject an already resolved backend. */
  resolvedBackend?: ResolvedBackend
  /** Ends the process at once, as SIGKILL would (UPS_TEST_FAULT kill points); absent: they throw. */
  kill?: () => void
  /** CPU cores for training.workers auto (default os.availableParallelism()). */
  cpus?: number
  /** Peak resident memory of the process so far, in bytes (recorded in metadata.json). */
  peakRssBytes?: () => number
}

export interface TrainOptions {
  runDir: RunDir
  backend: BackendRequest
  stage: StageSelection
  resume: boolean
  deps: TrainDeps
}

export interface StageReport {
  stage: StageName
  status: 'trained' | 'resumed' | 'already_done' | 'skipped' | 'not_selected'
  epochs: number
  steps: number
  best_val: number | null
  best_epoch: number | null
  stopped_early: boolean
  step_time_ms: number | null
  /** Training items per second of step time in this process (null: no epoch ran here). */
  samples_per_sec: number | null
  resumed_from: string | null
  checkpoints: StageState['checkpoints']
}

export interface TrainResult {
  run_id: string
  run_dir: string
  checkpoints_dir: string
  backend: {name: string; reason: string; adapter?: WebgpuAdapterInfo}
  stages: StageReport[]
  latent_cache: {dir: string; reused: string[]; rebuilt: string[]} | null
  /** The last trained stage's `<stage>.ckpt` (the resume-equivalence check compares its weights). */
  final_checkpoint: string | null
  seconds: number
}

/**
 * Holds the run directory's lock throughout (a second trainer of the same run is refused before it
 * writes anything) and clears the temp files a killed writer left there.
 */
export async function trainPipeline(config: UpsConfig, options: TrainOptions): Promise<TrainResult> {
  // data.file / data.raw_split reach every dataset opened while training, whoever opens it.
  return withDataSource(dataSourceOf(config), () => runTrainPipeline(config, options))
}

async function runTrainPipeline(config: UpsConfig, options: TrainOptions): Promise<TrainResult> {
  const {runDir, deps} = options
  const onReclaim = (previous: LockInfo | null, reason: string) => deps.logger.warn({lock: join(runDir.path, RUN_LOCK_FILE)}, `Reclaimed the lock of ${runDir.path} from ${describeHolder(previous)}: ${reason}`)
  return withRunDirLock(runDir.path, `ups train (${runDir.id})`, async (lock) => {
    const outside = await removeOutsideTemps([checkpointDirOf(config, runDir.path), latentCacheDirOf(config, runDir.path, deps.cwd)], runDir.path, isPidAlive, deps.clock())
    for (const path of [...lock.removedTemps, ...outside]) deps.logger.info({path}, `Removed a temp file left by a killed writer: ${path}`)
    return trainLocked(config, options)
  }, {onReclaim})
}

async function trainLocked(config: UpsConfig, options: TrainOptions): Promise<TrainResult> {
  const {runDir, deps} = options
  const {logger} = deps
  const started = deps.clock()
  const ckptDir = checkpointDirOf(config, runDir.path)
  const seed = config.seed ?? 0
  const configHash = trainingConfigHash(config)
  const fault: FaultPlan = parseFault(deps.env.UPS_TEST_FAULT, deps.kill)
  const current = {stage: 'setup' as string, batch: 0}
  const mirror = deps.wandb ? new WandbMirror(deps.wandb) : undefined
  const history = historyWriter(runDir)
  const trainingLog = new JsonlAppender(join(runDir.paths.logs, 'training.jsonl'), 1)
  const extraLog = config.training?.log_path ? new JsonlAppender(resolve(deps.cwd, config.training.log_path), 1) : undefined
  try {
    const backend = deps.resolvedBackend ?? (await resolveBackend(options.backend, logger))
    // The GPU behind webgpu goes next to the step times: dry-run estimates can then use measured figures.
    const adapter = backend.adapter ? {...backend.adapter} : undefined
    await updateMetadata(runDir, {status: 'running', backend: {name: backend.name, reason: backend.reason, tried: backend.tried, adapter}, config_hash: configHash})
    if (mirror) {
      // Also the runbook's `artifacts/wandb_run.json`: the descriptor of the latest training run.
      // The run's config on W&B, like config.resolved.yaml, names ${env:...} secrets instead of holding them.
      const status = await mirror.start(runDir, wandbSettingsFromConfig(config), {config: redactConfigSecrets(config as Record<string, unknown>, deps.env), pointerPath: join(deps.cwd, 'artifacts', 'wandb_run.json')})
      if (!status.active && config.logging?.wandb?.enabled) logger.warn({reason: status.reason}, `W&B mirror off: ${status.reason}`)
    }

    // Upstream configs set amp for CUDA autocast; tfjs has no float16 training on any backend.
    if (config.training?.amp) logger.warn({backend: backend.name}, `training.amp is set, but tfjs trains in float32 on every backend (${backend.name} here): it has no effect.`)

    const previous = await readPipelineState(ckptDir)
    if (previous && previous.config_hash !== configHash) {
      logger.warn({was: previous.config_hash, now: configHash}, 'The config changed since these checkpoints were written; finished stages are kept, the others resume with the new settings.')
    }
    const state: PipelineState = previous ?? {version: 1, config_hash: configHash, seed, stages: {}}
    state.config_hash = configHash
    if (options.stage !== 'all') {
      const order = STAGES.indexOf(options.stage)
      if (state.stages[options.stage]?.done) {
        // An explicit request to redo a finished stage: its checkpoints and every later stage's go.
        for (const s of STAGES.slice(order)) {
          await clearStageCheckpoints(ckptDir, s)
          delete state.stages[s]
        }
        logger.info({stage: options.stage}, `Redoing ${options.stage}: its checkpoints and those of later stages were removed`)
      }
    }

    const data = await prepareData(config, deps, seed)
    // Which files and which sample indices each split came from: a run can be reproduced elsewhere.
    const sources = await describeDataSources(trainDataRoot(config, deps), tasksOf(config), dataSourceOf(config))
    await updateMetadata(runDir, {data_source: {root: trainDataRoot(config, deps), tasks: sources}})
    logger.info({}, `Data source: ${renderDataSources(sources)}`)
    state.data = {
      tasks: data.tasks, grid: data.gridShape, channels: data.channels, frames: data.frames, dt: data.dt, val_source: data.valSource,
      norm_stats: Object.fromEntries(Object.entries(data.normStats).map(([t, s]) => [t, {mean: s.mean, std: s.std, channelNames: s.channelNames}])),
    }
    await writePipelineState(ckptDir, state)
    logger.info({run_dir: runDir.path, backend: backend.name, checkpoints: ckptDir}, 'Training started')
    logger.info({}, `Data: ${data.train.length} train trajectories x ${data.frames} frames, grid ${data.gridShape.join('x')} x ${data.channels}; validation: ${data.valSource}; dt ${data.dt}`)
    if (data.blockTrajectories !== undefined) {
      logger.info({block_trajectories: data.blockTrajectories}, `Data: larger than data.memory_budget_mb (${config.data.memory_budget_mb ?? DEFAULT_MEMORY_BUDGET_MB} MB): streamed from disk in blocks of ${data.blockTrajectories} trajectories`)
    }

    const lambdas = {lambdaSpectral: config.training?.lambda_spectral ?? 0, lambdaRelative: config.training?.lambda_relative ?? 0}
    const selected = (s: StageName): boolean => options.stage === 'all' || options.stage === s
    const reports: StageReport[] = []
    let latentCache: TrainResult['latent_cache'] = null
    let latents: Awaited<ReturnType<typeof ensureLatentCache>>['latents'] | null = null
    let stepOffset = 0
    let finalCheckpoint: string | null = null
    const stepTimes: Record<string, number | null> = {}
    const dataParallel: Record<string, {replicas: number; reason: string}> = {}

    for (const stage of STAGES) {
      const settings = resolveStage(config, stage)
      const prior = state.stages[stage]
      const report = (status: StageReport['status'], s?: StageState, o?: StageOutcome): StageReport => ({
        stage, status, epochs: s?.epochs ?? 0, steps: s?.steps ?? 0, best_val: s?.best_val ?? null, best_epoch: s?.best_epoch ?? null,
        stopped_early: s?.stopped_early ?? false, step_time_ms: o?.stepTimeMs ?? s?.step_time_ms ?? null, samples_per_sec: o?.samplesPerSec ?? null, resumed_from: o?.resumedFrom ?? null, checkpoints: s?.checkpoints ?? {},
      })
      if (!selected(stage)) {
        reports.push(report('not_selected', prior))
        stepOffset += prior?.steps ?? 0
        continue
      }
      if (prior?.done) {
        logger.info({stage}, prior.skipped ? `Stage ${stage}: skipped (epochs <= 0)` : `Stage ${stage}: already done (${prior.epochs} epochs, best val ${prior.best_val ?? '-'}); skipping`)
        reports.push(report('already_done', prior))
        stepOffset += prior.steps
        if (!prior.skipped) finalCheckpoint = join(ckptDir, `${stage}.ckpt`)
        continue
      }
      if (!settings.enabled) {
        if (stage === 'autoencoder') await saveUntrainedAutoencoder(config, data, seed, ckptDir, logger)
        else logger.info({stage}, `Stage ${stage}: skipped (epochs ${settings.epochs})`)
        state.stages[stage] = {done: true, skipped: true, epochs: 0, steps: 0, best_val: null, best_epoch: null, stopped_early: false, config_hash: configHash, checkpoints: {}}
        await writePipelineState(ckptDir, state)
        reports.push(report('skipped', state.stages[stage]))
        continue
      }
      if (stage !== 'autoencoder' && !latents) {
        const cache = await buildCache(config, data, seed, ckptDir, deps, runDir)
        latents = cache.result.latents
        latentCache = {dir: cache.dir, reused: cache.result.reused, rebuilt: cache.result.rebuilt.map((r) => r.name)}
        state.latent_cache = {config_hash: latentCacheConfigHash(config), autoencoder_hash: cache.autoencoderHash, dtype: cache.dtype, ...latentCache}
        await writePipelineState(ckptDir, state)
      }

      current.stage = stage
      current.batch = settings.batch_size
      logger.info({stage}, `Stage ${stage}: ${settings.epochs} epochs, ${settings.optimizer.name} lr ${settings.optimizer.lr}, batch ${settings.batch_size}x${settings.accum_steps}`)
      const inputs = {config, seed, data, latents, checkpointsDir: ckptDir, lambdas, residualScale: state.stages.diff_residual?.residual_scale}
      const {spec, free, record} = await buildStage(stage, inputs)
      // Replicas build the stage with main's residual scale rather than measuring it again.
      if (record) inputs.residualScale = record.residual_scale
      let outcome: StageOutcome
      let pool: ReplicaPool | undefined
      try {
        const choice = resolveWorkers({
          setting: config.training?.workers, backend: backend.name, accumSteps: settings.accum_steps,
          cpus: deps.cpus ?? availableParallelism(), envOverride: deps.env.UPS_TRAIN_WORKERS,
        })
        logger.info({stage, replicas: choice.replicas, backend: backend.name, reason: choice.reason}, `Stage ${stage}: ${describeReplicas(choice.replicas)} on ${backend.name} (${choice.reason})`)
        dataParallel[stage] = {replicas: choice.replicas, reason: choice.reason}
        await updateMetadata(runDir, {data_parallel: {backend: backend.name, stages: {...dataParallel}}})
        pool = await startStageReplicas(stage, choice.replicas, {backend: backend.name, store: spec.store, recipe: () => trainReplicaRecipe(stage, inputs)})
        const micro = resolveMicroBatch({setting: config.training?.micro_batch, backend: backend.name, batchSize: settings.batch_size, accumSteps: settings.accum_steps})
        logger.info({stage, micro_batch: micro.rows, passes: micro.passes, reason: micro.reason}, `Stage ${stage}: ${micro.passes} pass(es) of ${micro.rows} rows per step (${micro.reason})`)
        outcome = await runStage({
          pool, microBatchMerge: micro.merge,
          spec, settings, checkpointsDir: ckptDir, seed: deriveSeed(seed, `${stage}/train`),
          checkpointInterval: config.training?.checkpoint_interval ?? 0, globalStepOffset: stepOffset,
          clock: deps.clock, logger, onProgress: deps.onProgress, fault,
          onEpoch: async (r) => {
            await recordEpoch(r, deps, {history, trainingLog, extraLog, mirror})
            state.stages[stage] = {...stageState(r, configHash), ...record, done: false}
            await writePipelineState(ckptDir, state)
          },
          onResume: (r) => restoreEpochRecord(r, runDir, deps.logger, {history, mirror}),
        })
      } finally {
        // Worker threads end with the stage, on success, error and NaN stop alike.
        await pool?.close()
        free()
      }
      const s: StageState = {
        done: true, epochs: outcome.epochsDone, steps: outcome.steps, best_val: outcome.bestVal, best_epoch: outcome.bestEpoch,
        stopped_early: outcome.stoppedEarly, config_hash: configHash, checkpoints: outcome.hashes, step_time_ms: outcome.stepTimeMs ?? prior?.step_time_ms ?? null,
        ...record,
      }
      if (outcome.stoppedEarly) logger.info({stage}, `Stage ${stage}: early stop after epoch ${outcome.epochsDone} (no val improvement for ${settings.patience} epochs; best ${outcome.bestVal} at epoch ${outcome.bestEpoch})`)
      state.stages[stage] = s
      await writePipelineState(ckptDir, state)
      stepTimes[stage] = s.step_time_ms ?? null
      await updateMetadata(runDir, {training: {step_time_ms: {...stepTimes}, backend: backend.name, adapter}})
      reports.push(report(outcome.resumedFrom ? 'resumed' : 'trained', s, outcome))
      stepOffset += outcome.steps
      finalCheckpoint = join(ckptDir, `${stage}.ckpt`)
    }

    const seconds = (deps.clock() - started) / 1000
    const allStepTimes = Object.fromEntries(STAGES.filter((s) => state.stages[s] && !state.stages[s]!.skipped).map((s) => [s, state.stages[s]!.step_time_ms ?? null]))
    const peak = deps.peakRssBytes?.()
    await updateMetadata(runDir, {status: 'finished', training: {
      step_time_ms: allStepTimes, backend: backend.name, backend_reason: backend.reason, adapter, seconds,
      ...(peak ? {peak_rss_mb: Math.round(peak / 2 ** 20)} : {}),
      ...(data.blockTrajectories !== undefined ? {streamed: {block_trajectories: data.blockTrajectories, memory_budget_mb: data.memoryBudgetBytes! / 2 ** 20}} : {}),
    }})
    await updateSummary(runDir, Object.fromEntries(reports.filter((r) => r.best_val !== null).map((r) => [`${r.stage}/best_val_loss`, r.best_val])))
    logger.info({seconds: Number(seconds.toFixed(1))}, 'Training pipeline completed successfully')
    if (mirror) await mirror.uploadFiles(await bestCheckpointFiles(ckptDir))
    await mirror?.finish(true)
    return {
      run_id: runDir.id, run_dir: runDir.path, checkpoints_dir: ckptDir, backend: {name: backend.name, reason: backend.reason, adapter},
      stages: reports, latent_cache: latentCache, final_checkpoint: finalCheckpoint, seconds,
    }
  } catch (error) {
    const err = outOfMemoryError(error, current) ?? (knownUserError(error) ?? dataSizeError(error) ?? internal(error))
    logger.error({code: err.code}, `Training pipeline failed: ${err.message}`)
    await updateMetadata(runDir, {status: 'failed', error: {code: err.code, message: err.message}}).catch(() => undefined)
    await mirror?.finish(false).catch(() => undefined)
    throw err
  } finally {
    closeFrameStreams()
    closeLatentFiles()
    await history.close().catch(() => undefined)
    await trainingLog.close().catch(() => undefined)
    await extraLog?.close().catch(() => undefined)
  }
}

function internal(error: unknown): UserError {
  return new UserError(`Unexpected error: ${(error as Error)?.message ?? String(error)}`, {
    code: 'TRAIN_INTERNAL',
    hint: 'Rerun with --verbose for the stack trace; resume later with `ups train CONFIG --run-dir RUN --resume`.',
    exitCode: ExitCode.CHECK_FAILED,
    cause: error,
  })
}

function stageState(r: EpochRecord, configHash: string): StageState {
  return {
    done: false, epochs: r.epoch, steps: r.step, best_val: r.metrics[`${r.stage}/best_loss`] ?? null, best_epoch: r.bestEpoch,
    stopped_early: r.stoppedEarly, config_hash: configHash, checkpoints: {},
  }
}

async function recordEpoch(
  r: EpochRecord,
  deps: TrainDeps,
  sinks: {history: ReturnType<typeof historyWriter>; trainingLog: JsonlAppender; extraLog?: JsonlAppender; mirror?: WandbMirror},
): Promise<void> {
  const now = new Date(deps.clock())
  deps.logger.info({}, formatEpochLine(r))
  const record = {time: now.toISOString(), stage: r.stage, epoch: r.epoch, epochs: r.epochs, ...r.metrics}
  await sinks.trainingLog.append(record)
  await sinks.extraLog?.append(record)
  await sinks.history.log(r.globalStep, {...r.metrics, epoch: r.epoch}, now)
  await sinks.history.sync()
  await sinks.mirror?.log({...r.metrics}, r.globalStep)
}

async function prepareData(config: UpsConfig, deps: TrainDeps, seed: number): Promise<TrainingData> {
  const root = trainDataRoot(config, deps)
  const tasks = tasksOf(config)
  const g = config.data.generate
  if (g) {
    for (const task of tasks) {
      const r = await ensureGeneratedData({root, task, samples: g.samples ?? 100, nx: g.nx, nt: g.nt, nu: g.nu, beta: g.beta, seed: g.seed, splits: g.splits})
      if (r.generated.length > 0) deps.logger.info({task, root}, `Generated ${task} data for ${r.generated.join(', ')} in ${root}`)
    }
  }
  return loadTrainingData({
    root, tasks, timeStride: config.training?.time_stride ?? 1, maxSamples: config.data.max_samples ?? null,
    dt: config.training?.dt ?? null, valFraction: config.training?.val_fraction ?? 0.1, seed,
    memoryBudgetMb: config.data.memory_budget_mb ?? null,
  })
}

/** An autoencoder stage with epochs <= 0 still needs an encoder: save the seeded initial weights. */
async function saveUntrainedAutoencoder(config: UpsConfig, data: TrainingData, seed: number, dir: string, logger: LoopLogger): Promise<void> {
  logger.warn({stage: 'autoencoder'}, 'stages.autoencoder.epochs <= 0: latents come from an untrained (seeded) encoder; set epochs > 0 for meaningful latents.')
  const ae = buildAutoencoder(config, data.gridShape, data.channels, seed)
  await saveCheckpoint(bestPath(dir, 'autoencoder'), {tensors: await ae.store.exportArraysAsync(), epoch: 0, step: 0, metadata: {stage: 'autoencoder', kind: 'best', untrained: true}})
  ae.dispose()
  ae.store.dispose()
}

async function buildCache(config: UpsConfig, data: TrainingData, seed: number, ckptDir: string, deps: TrainDeps, runDir: RunDir) {
  const tf = await import('@tensorflow/tfjs')
  const ae = buildAutoencoder(config, data.gridShape, data.channels, seed)
  try {
    const ckpt = await loadCheckpoint(bestPath(ckptDir, 'autoencoder'))
    ae.store.importArrays(ckpt.tensors, '', `checkpoint ${ckpt.path}`)
    const dir = latentCacheDirOf(config, runDir.path, deps.cwd)
    const dtype = config.training?.latent_cache_dtype ?? 'float32'
    const autoencoderHash = ckpt.manifest.weightsSha256
    const result = await ensureLatentCache(data.splits, {
      dir, configHash: latentCacheConfigHash(config), autoencoderHash, dtype, tokens: config.latent.tokens, dim: config.latent.dim,
      frameSize: data.frameSize, memoryBudgetBytes: data.memoryBudgetBytes,
      dataIdentity: (s) => s.identity ?? `${s.task}/${s.split}/n=${s.n}/frames=${s.frames}`,
      encode: async (frames, count) => {
        const z = tf.tidy(() => ae.encode(tf.tensor(frames, [count, ...data.gridShape, data.channels])))
        try {
          return (await z.data()) as Float32Array
        } finally {
          z.dispose()
        }
      },
      log: (m) => deps.logger.info({}, m),
    })
    return {dir, dtype, autoencoderHash, result}
  } finally {
    ae.dispose()
    ae.store.dispose()
  }
}

/** The files of every `<stage>_best.ckpt` (weights + manifest): what W&B keeps of a run's models. */
async function bestCheckpointFiles(ckptDir: string): Promise<string[]> {
  const names = await readdir(ckptDir).catch(() => [] as string[])
  const files: string[] = []
  for (const name of names.filter((n) => /^[a-z_]+_best\.ckpt$/.test(n)).sort()) {
    for (const file of await readdir(join(ckptDir, name))) files.push(join(ckptDir, name, file))
  }
  return files
}
