// The slow set: tests that stay in CI (.ci/run sets GYRE_TEST_SLOW=1) but not in every `npm test`.
// Outside it they are reported as skipped, with the reason in the test's name, never as passed.
export const SLOW = process.env.GYRE_TEST_SLOW === '1';
export const SLOW_REASON = 'slow set: runs with GYRE_TEST_SLOW=1, as .ci/run does';

/** A describe block that runs only in the slow set (jest counts its tests as skipped otherwise). */
export function describeSlow(name: string, fn: () => void): void {
  (SLOW ? describe : describe.skip)(SLOW ? name : `${name} [skipped: ${SLOW_REASON}]`, fn);
}

/** `full` in the slow set, `quick` otherwise: for property tests whose run count sets their cost. */
export function slowOr<T>(full: T, quick: T): T {
  return SLOW ? full : quick;
}
