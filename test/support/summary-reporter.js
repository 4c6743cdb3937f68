/**
 * Jest reporter that ends the run with one plain line, `tests: N passed, N failed`, so that
 * tools reading the closing lines of a CI log get the counts without parsing Jest's format.
 */
export default class SummaryReporter {
  onRunComplete(_contexts, results) {
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    process.stdout.write(`\ntests: ${results.numPassedTests} passed, ${failed} failed\n`);
  }
}
