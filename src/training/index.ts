/** The training engine's public API (the CLI imports this lazily: it loads tfjs). */
export {type BackendProbe, type BackendRequest, probeBackends, type ResolvedBackend, resolveBackend} from './backend.js'
export {
  type CheckpointPayload,
  latestValidCheckpoint,
  type LoadedCheckpoint,
  loadCheckpoint,
  type NamedArray,
  saveCheckpoint,
  saveNumberedCheckpoint,
} from './checkpoint.js'
export {compositeLoss, type LossWeights, mse, nrmse, spectralEnergyError, trainingLoss} from './losses.js'
export * from './models/index.js'
export {createOptimizer, Optimizer, type OptimizerConfig, type OptimizerState} from './optim.js'
export {ParamStore} from './params.js'
export {Rng, type RngState} from './rng.js'
export {createScheduler, Scheduler, type SchedulerConfig, type SchedulerState} from './schedule.js'
export {applyAccumulated, applyAccumulatedAsync, clipByGlobalNorm, Ema, globalNorm, GradientAccumulator, lossAndGrads, type StepContext, trainStep, trainStepAsync, type TrainStepResult} from './step.js'
export {type CorrectOptions, type Field, type Latent, loadSimulator, type Simulator} from './simulator.js'
export {type StageReport, type StageSelection, type TrainDeps, type TrainOptions, type TrainResult, trainPipeline} from './train.js'
export {prepareTrainRunDir, type RunDirRequest} from './run-setup.js'
export {readPipelineState, type PipelineState, type StageState} from './pipeline-state.js'
export {ensureLatentCache, type CacheMeta, fromHalf, toHalf} from './cache.js'
