/**
 * Timing work inside workerd from outside: workerd's clocks stand still while a request computes, so a bench
 * Worker does the work N times in one request and Node times it, minus the N = 0 requests just before and after
 * (which do everything except the loop).
 */

/** Wall time of one GET, ms; anything but 200 is an error. */
export async function timeRequest(url: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(url);
  const body = await response.text();
  const elapsed = performance.now() - started;
  if (response.status !== 200) throw new Error(`${url}: HTTP ${response.status} ${body}`);
  return elapsed;
}

/** µs per operation: the request `url(n)` minus the mean of two `url(0)` around it, divided by n. */
export async function microsecondsPerOp(url: (n: number) => string, n: number): Promise<number> {
  const before = await timeRequest(url(0));
  const full = await timeRequest(url(n));
  const after = await timeRequest(url(0));
  return ((full - (before + after) / 2) * 1000) / n;
}
