import assert from 'node:assert/strict'
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {test} from 'node:test'

import {formatError, toUserError} from '../../src/cli/base-command.js'
import {ExitCode, UserError} from '../../src/util/errors.js'
import {writeFileAtomic, writeJsonAtomic} from '../../src/util/fs.js'
import {redactSecrets} from '../../src/util/secrets.js'
import {tempDir} from '../helpers.js'

test('writeFileAtomic replaces content whole and leaves no temp file', async (t) => {
  const dir = await tempDir(t)
  const path = join(dir, 'sub', 'a.json')
  await writeJsonAtomic(path, {a: 1})
  await writeFileAtomic(path, 'second')
  assert.equal(await readFile(path, 'utf8'), 'second')
  assert.deepEqual(await readdir(join(dir, 'sub')), ['a.json'])
})

test('redactSecrets removes every occurrence of a key value', () => {
  const env = {VAST_API_KEY: 'abcdef123456', WANDB_API_KEY: 'wandbkey9876'}
  const text = 'curl -H "Authorization: abcdef123456" wandbkey9876 abcdef123456'
  const out = redactSecrets(text, env)
  assert.ok(!out.includes('abcdef123456') && !out.includes('wandbkey9876'))
  assert.match(out, /\[REDACTED:VAST_API_KEY\].*\[REDACTED:WANDB_API_KEY\]/)
})

test('errors render as one paragraph with a hint, and without a stack unless asked', () => {
  const err = new UserError('The file x.h5 is not HDF5.', {hint: 'Re-fetch it.', exitCode: ExitCode.USAGE})
  assert.equal(formatError(err), 'Error: The file x.h5 is not HDF5.\nHint: Re-fetch it.\n')
  assert.match(formatError(err, new Error('boom')), /\n\s+at /)
  const bug = toUserError(new TypeError('x is undefined'))
  assert.equal(bug.code, 'INTERNAL')
  assert.match(bug.hint ?? '', /--verbose/)
  const usage = toUserError(Object.assign(new Error('Missing 1 required arg'), {oclif: {exit: 2}}))
  assert.equal(usage.exitCode, ExitCode.USAGE)
})
