import assert from 'node:assert/strict'
import {test} from 'node:test'

import {formatError, toUserError} from '../../src/cli/base-command.js'
import {ExitCode, errnoUserError, fsError} from '../../src/util/errors.js'

/** An error shaped as Node's fs functions throw them. */
const errno = (code: string, syscall: string, path?: string) =>
  Object.assign(new Error(`${code}: something, ${syscall}${path ? ` '${path}'` : ''}`), {code, errno: -1, syscall, ...(path ? {path} : {})})

test('an uncaught errno error names the path and the fix instead of an internal error', () => {
  const cases: Array<[string, string, RegExp, RegExp]> = [
    ['ENOSPC', 'write', /disk is full/, /Free space/],
    ['EROFS', 'mkdir', /read-only filesystem/, /writable folder/],
    ['ENAMETOOLONG', 'open', /name that is too long/, /shorter/],
    ['EDQUOT', 'write', /quota/, /Free space/],
    ['EMFILE', 'open', /too many open files/, /ulimit -n/],
    ['EXDEV', 'rename', /across filesystems/, /same disk/],
  ]
  for (const [code, syscall, reason, hint] of cases) {
    const err = toUserError(errno(code, syscall, '/runs/run_1/checkpoints/operator.ckpt'))
    assert.equal(err.code, `FS_${code}`)
    assert.equal(err.exitCode, ExitCode.USAGE)
    assert.match(err.message, /^The path \/runs\/run_1\/checkpoints\/operator\.ckpt /)
    assert.match(err.message, reason)
    assert.match(err.hint ?? '', hint)
    assert.deepEqual(err.details, {path: '/runs/run_1/checkpoints/operator.ckpt', errno: code})
    assert.doesNotMatch(formatError(err), /Unexpected|internal/i)
  }
})

test('an errno error without a path (a write to an open file) still says what went wrong', () => {
  const err = toUserError(errno('ENOSPC', 'write'))
  assert.equal(err.code, 'FS_ENOSPC')
  assert.match(err.message, /\(during write\) cannot be written: the disk is full/)
})

test('errnoUserError leaves non-errno errors alone; unknown errno codes keep the system message', () => {
  assert.equal(errnoUserError(new TypeError('x is undefined')), undefined)
  assert.equal(errnoUserError(Object.assign(new Error('no syscall'), {code: 'ENOSPC'})), undefined)
  assert.equal(toUserError(new TypeError('x')).code, 'INTERNAL')
  const odd = fsError(errno('EWEIRD', 'open', '/x'), '/x')
  assert.match(odd.message, /cannot be accessed \(EWEIRD/)
})
