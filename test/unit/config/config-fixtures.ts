import assert from 'node:assert/strict'

import {UserError} from '../../../src/util/errors.js'

/** The smallest config that loads: the config tests' starting point. */
export const MINIMAL = `
data: {task: burgers1d, root: data}
latent: {dim: 16, tokens: 8}
operator:
  pdet: {hidden_dim: 32, depths: [1, 1], group_size: 8, num_heads: 2}
stages:
  operator: {epochs: 2}
`

/** Awaits `promise`, which must reject with a UserError of `code` (and a message matching `pattern`). */
export async function rejectsWith(promise: Promise<unknown>, code: string, pattern?: RegExp): Promise<UserError> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof UserError, `expected a UserError, got ${error}`)
    assert.equal(error.code, code, error.message)
    if (pattern) assert.match(error.message, pattern)
    return error
  }
  assert.fail(`expected ${code}`)
}
