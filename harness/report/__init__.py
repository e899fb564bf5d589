"""Every renderer: text, the JSON contract, SARIF, Markdown, the reproduce report and HTML page, the CI summary, the rules listing."""
