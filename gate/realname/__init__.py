"""Real-name tickets at the gate: which tickets need an ID check (policy), the binding a
presented ID gives (computed outside the validator's lock), and the wait for an ID from a
card reader or a keypad (check). Nothing here stores, logs or sends an ID number."""
