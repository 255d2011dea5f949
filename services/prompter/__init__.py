"""The prompter: turns publishable street needs into plain-language prompts linked to ways to help."""
