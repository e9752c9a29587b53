import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClientError, Status } from 'nice-grpc';
import { DeadlineExceededError, fromClientError, NotFoundError, UnavailableError } from '../../core/errors.js';
import { decide, failed, NO_ATTEMPTS, outcomeOf, type Attempts, type Decision, type Fault } from './decide.js';

const WINDOW = 5000;
const cp: Fault = { source: 'control-plane', dataPlaneDown: false, sinceLastRepair: Infinity };
const cpWithDpDown: Fault = { source: 'control-plane', dataPlaneDown: true, sinceLastRepair: Infinity };
const kernel: Fault = { source: 'kernel', dataPlaneDown: true, sinceLastRepair: Infinity };
const kernelSoonAfterRepair: Fault = { source: 'kernel', dataPlaneDown: true, sinceLastRepair: 100 };
const probe: Fault = { source: 'probe', dataPlaneDown: true, sinceLastRepair: Infinity };
const probeSoonAfterRepair: Fault = { source: 'probe', dataPlaneDown: true, sinceLastRepair: 100 };
const probeLateAfterRepair: Fault = { source: 'probe', dataPlaneDown: true, sinceLastRepair: WINDOW };

const tried = (failedRepairs: number, failedReselects = 0, endpointGone = false): Attempts => ({ failedRepairs, failedReselects, endpointGone });
const repair: Decision = { action: 'repair' };
const reselect = (why: string): Decision => ({ action: 'reselect', why });

const TABLE: Array<[name: string, attempts: Attempts, fault: Fault, expected: Decision]> = [
  ['control plane, data plane healthy: repair', NO_ATTEMPTS, cp, repair],
  ['control plane, data plane healthy, repairs keep failing: still repair', tried(5), cp, repair],
  ['control plane, endpoint gone: reselect', tried(1, 0, true), cp, reselect('endpoint gone')],
  ['control plane with the data plane down: repair first', NO_ATTEMPTS, cpWithDpDown, repair],
  ['control plane with the data plane down, two failed repairs: reselect', tried(2), cpWithDpDown, reselect('repairs did not restore the data plane')],
  ['kernel fault: repair', NO_ATTEMPTS, kernel, repair],
  ['kernel fault soon after a repair: repair again', NO_ATTEMPTS, kernelSoonAfterRepair, repair],
  ['kernel fault, one failed repair: repair', tried(1), kernel, repair],
  ['kernel fault, two failed repairs: reselect', tried(2), kernel, reselect('repairs did not restore the data plane')],
  ['probe fault: repair', NO_ATTEMPTS, probe, repair],
  ['probe fault soon after a repair: reselect', NO_ATTEMPTS, probeSoonAfterRepair, reselect('data plane failed again after a repair')],
  ['probe fault a full window after a repair: repair', NO_ATTEMPTS, probeLateAfterRepair, repair],
  ['probe fault soon after a repair, the reselect failed: repair', tried(0, 1), probeSoonAfterRepair, repair],
  ['probe fault soon after a repair, endpoint gone: the endpoint is named', tried(0, 0, true), probeSoonAfterRepair, reselect('endpoint gone')],
  ['probe fault, reselect failed and two repairs failed: reselect', tried(2, 1), probe, reselect('repairs did not restore the data plane')],
];

describe('heal decide', () => {
  for (const [name, attempts, fault, expected] of TABLE) {
    it(name, () => assert.deepEqual(decide(fault, attempts, WINDOW), expected));
  }

  it('failed() counts the action and remembers a gone endpoint', () => {
    let a = failed(NO_ATTEMPTS, 'repair', 'failed');
    assert.deepEqual(a, tried(1));
    a = failed(a, 'repair', 'not-found');
    assert.deepEqual(a, tried(2, 0, true));
    a = failed(a, 'reselect', 'failed');
    assert.deepEqual(a, tried(2, 1, true));
  });

  it('a repair that got no answer does not count towards a reselect, however often', () => {
    let a = NO_ATTEMPTS;
    for (let i = 0; i < 20; i++) a = failed(a, 'repair', 'no-answer');
    assert.deepEqual(a, NO_ATTEMPTS);
    assert.deepEqual(decide(kernel, a, WINDOW), repair);
    assert.deepEqual(decide(probe, a, WINDOW), repair);
    a = failed(a, 'repair', 'not-found');
    assert.deepEqual(decide(probe, a, WINDOW), reselect('endpoint gone'), 'the registry dropped the endpoint: reselect');
    assert.deepEqual(failed(NO_ATTEMPTS, 'reselect', 'no-answer'), tried(0, 1), 'a reselect counts whatever the outcome');
  });

  it('outcomeOf() reads the error class, also across a gRPC hop', () => {
    assert.equal(outcomeOf(new NotFoundError('x')), 'not-found');
    assert.equal(outcomeOf(new DeadlineExceededError('x')), 'no-answer');
    assert.equal(outcomeOf(new UnavailableError('x')), 'failed');
    assert.equal(outcomeOf(new Error('data plane still down')), 'failed');
    assert.equal(outcomeOf(fromClientError(new ClientError('/x', Status.DEADLINE_EXCEEDED, 'no answer'), 'request')), 'no-answer');
    assert.equal(outcomeOf(fromClientError(new ClientError('/x', Status.UNAVAILABLE, 'refused'), 'request')), 'failed');
  });
});
