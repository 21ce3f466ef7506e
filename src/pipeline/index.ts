/**
 * The pipeline's public API: the dry run and run estimate, the orchestrator (`ups run`,
 * `ups resume`), gates, the leaderboard, and the PipelineSteps interface it runs through.
 * Light to import: tfjs loads only when a step measures or trains.
 */
export * from './steps.js'
export {dryRun, estimateRun, renderDryRun, resolveTarget, dataShapeOf, DRY_RUN_STEPS, type DryRunOptions, type DryRunResult, type DryRunStepReport, type EstimateDeps, type EstimateRunOptions, type RunEstimate} from './estimate.js'
export * from './estimate-math.js'
export * from './gates.js'
export * from './leaderboard.js'
export * from './metadata.js'
export {runPipeline, resumePipeline, type PipelineDeps, type PipelineResult} from './run.js'
export {SUCCESS_LINE, failureLine, leaderboardRowOf, renderSummaryReport} from './report.js'
export {findGpu, GPUS, GPU_NAMES, type GpuInfo} from './gpus.js'
export {enabledStagesOf} from './stages.js'
