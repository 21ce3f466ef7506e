import {resolveStage, STAGES, type StageName, type UpsConfig} from '../config/index.js'

/** Enabled stages (epochs > 0) in training order. */
export function enabledStagesOf(config: UpsConfig): StageName[] {
  return STAGES.filter((s) => resolveStage(config, s).enabled)
}
