"""Every renderer: text, the JSON contract, SARIF, Markdown, the reproduce report and its HTML page, the CI outputs,
the rules listing. No module outside this room formats output."""
