import type {ParamStore} from '../params.js'

/** What every model reports (dry-run prints these). */
export interface ModelInfo {
  readonly kind: string
  readonly store: ParamStore
  /** Scalar parameters owned by this model. */
  paramCount(): number
  /** Estimated float32 bytes of activations kept for the backward pass of one batch. */
  activationBytes(batch: number): number
}
