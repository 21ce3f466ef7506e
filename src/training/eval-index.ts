/**
 * Evaluation's public API. Light to import (no tfjs): the engine loads only inside
 * loadSimulatorForEval, and vega/resvg only when plots are drawn.
 */
export {type EvalCommandResult, type EvalMirror, mirrorEvalToWandb, publishEvalToRun, type RunEvalDeps, type RunEvalOptions, runEvaluation} from './eval-run.js'
export {type EvalDeps, type EvalExample, type EvalOptions, type EvalResult, evaluate, type PairMetrics, type Simulator, type Tensorish} from './evaluate.js'
export {type CheckpointInventory, inspectCheckpoints, loadSimulatorForEval} from './load-simulator.js'
export {DEFAULT_BAND_EDGES, type FieldMetrics, FieldMetricsAccumulator, fieldMetrics, flattenMetrics, type RolloutMetrics, RolloutMetricsAccumulator, rolloutMetrics} from './metrics.js'
export {improvementRatio, LinearBaseline, LinearBaselineFitter, type OneStepMap, persistence, rolloutMap} from './baselines.js'
export {renderEvalPlots, renderVegaLite, type RenderedPlot} from './plots.js'
export {evalSummary, renderEval, renderReportMarkdown, resultsJson, type WrittenReport, writeEvalReport} from './report.js'
