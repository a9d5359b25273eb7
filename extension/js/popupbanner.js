// The popup's banner when Freight cannot be reached: what is wrong, and the command that
// fixes it.

export const DOWN = new Set(['host_unavailable', 'daemon_unavailable', 'error']);

export function bannerFor(s) {
  if (s.state === 'host_unavailable') {
    return {
      title: 'Freight is not connected',
      reason: s.reason,
      text: 'The browser could not start Freight\'s native host, so downloads stay with the '
        + 'browser. Install it (once), then try again:',
      cmd: 'freight install',
    };
  }
  if (s.state === 'daemon_unavailable') {
    return {
      title: 'Freight\'s daemon is not running',
      reason: s.reason,
      text: 'Downloads stay with the browser until it runs. Fix it with:',
      cmd: s.fix || 'freight start',
    };
  }
  return {
    title: 'Freight\'s daemon refused the connection',
    reason: s.reason,
    text: 'Downloads stay with the browser. Find out why with:',
    cmd: s.fix || 'freight doctor',
  };
}
