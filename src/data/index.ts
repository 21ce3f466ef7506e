/**
 * The data module's public API. Everything here is light to import: h5wasm loads only when
 * a function that reads or writes HDF5 runs.
 */
export {
  openDataset, openDatasetFiles, findShards, listShards, DEFAULT_READ_BUDGET_BYTES,
  type Dataset, type DatasetOptions, type ReadOptions, type ReadStats, type SampleBatch,
} from './pdebench.js'
export {withDataSource, currentDataSource, resolveTaskFiles, missingDataHint, type DataSource, type TaskFiles} from './source.js'
export {planRawSplit, DEFAULT_RAW_SPLIT, type RawSplitSpec, type RawSplitPlan, type RawSplitInfo, type IndexRanges} from './split.js'
export {RAW_FILE_PATTERNS, rawCandidates} from './raw-names.js'
export {describeDataSources, renderDataSources, type TaskDataSource, type FileIdentity} from './provenance.js'
export {describeFile, FIELD_NAMES, type FileLayout, type LayoutKind} from './layout.js'
export {createPdebenchWriter, type PdebenchWriter, type WriterOptions} from './writer.js'
export {computeNormStats, loadOrComputeNormStats, normalizeInPlace, normStatsPath, type NormStats} from './stats.js'
export {checkDeclaredSize, emptySplitError} from './storage.js'
export {KNOWN_TASKS, SPLITS, taskSpatialDims, type Split} from './tasks.js'
export {validateData, CHECK_IDS, type ValidateOptions, type ValidateDeps, type ValidateResult, type FileReport, type FileCheck, type CheckId, type CheckStatus} from './validate.js'
export {loadManifest, type ManifestEntry} from './manifest.js'
export {renderValidate} from './render.js'
export {
  generateDataset, ensureGeneratedData, generateSample, GENERATOR_TASKS, parseSplits, splitCounts, DEFAULT_SPLITS,
  type GenerateOptions, type GenerateResult, type GenerateProgress, type GeneratedFile, type GeneratorTask,
  type GeneratorParams, type EnsureOptions, type EnsureResult, type SplitFractions,
} from './generate/index.js'
