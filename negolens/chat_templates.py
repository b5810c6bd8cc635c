"""Chat templates negolens supplies for models whose weights carry none.

Templates are Jinja strings in the transformers ``apply_chat_template`` dialect, so every model
is rendered through one code path. Message contents are inserted verbatim (no trimming), which
lets :mod:`negolens.chat` find each turn's character span in the rendered text.
"""

from __future__ import annotations

# Gemma's turn format. Gemma has no system role: a system message is prefixed to the first
# user turn, as Google's own Gemma-3 template does.
GEMMA_TURNS = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set prefix = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{% if loop.first %}{{ prefix }}{% endif %}"
    "{{ message['content'] + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

# ChatML, as used by SmolLM2; also given to the tiny test tokenizers.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
