import assert from 'node:assert/strict'
import {test} from 'node:test'

import {dataSizeError} from '../../../src/training/train-helpers.js'
import {UserError} from '../../../src/util/errors.js'

test("Node's size caps become an error naming the data knobs, not TRAIN_INTERNAL", () => {
  for (const message of [
    'The value of "size" is out of range. It must be >= 0 && <= 4294967296. Received 8_276_803_584',
    'data is too long',
    'Array buffer allocation failed',
    'Invalid typed array length: 2147483648',
  ]) {
    const e = dataSizeError(new RangeError(message))
    assert.ok(e, message)
    assert.equal(e.code, 'TRAIN_DATA_TOO_LARGE')
    for (const knob of ['data.memory_budget_mb', 'data.max_samples', 'training.time_stride', 'training.latent_cache_dtype']) assert.match(e.hint ?? '', new RegExp(knob.replace('.', '\\.')))
  }
  assert.equal(dataSizeError(new Error('shape mismatch')), null)
  assert.equal(dataSizeError(new UserError('data is too long', {code: 'X'})), null)
})
