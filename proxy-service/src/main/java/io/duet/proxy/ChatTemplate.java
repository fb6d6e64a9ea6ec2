package io.duet.proxy;

import io.duet.proxy.impl.ChatTemplates;
import java.util.List;

/**
 * Renders a chat conversation into the prompt text a completion model continues.
 *
 * <p>Templates are looked up by name ({@link #forName}):
 * <ul>
 *   <li>{@value #LLAMA2} (the default, for llama2.c chat models) renders turns the way llama2.c's
 *   {@code run.c} chat mode does: the first user turn with a system prompt as
 *   <pre>[INST] &lt;&lt;SYS&gt;&gt;\n{system}\n&lt;&lt;/SYS&gt;&gt;\n\n{user} [/INST]</pre>
 *   every other user turn as {@code [INST] {user} [/INST]}, and each earlier assistant reply as
 *   {@code " {assistant} "} between the turns. Several system messages are joined with a blank
 *   line; consecutive messages of one role are joined with a newline.</li>
 *   <li>{@value #PLAIN} writes one role-prefixed line per message ({@code System: ...},
 *   {@code User: ...}, {@code Assistant: ...}) and ends with {@code Assistant:}.</li>
 *   <li>{@value #DEEPSEEK_V3} renders as DeepSeek-V3's own Jinja template does:
 *   <pre>&lt;｜begin▁of▁sentence｜&gt;{system}&lt;｜User｜&gt;{user}&lt;｜Assistant｜&gt;{assistant}&lt;｜end▁of▁sentence｜&gt;...&lt;｜User｜&gt;{user}&lt;｜Assistant｜&gt;</pre>
 *   with every system message (joined by a blank line) after the BOS, wherever it stands in the
 *   conversation, and consecutive messages of one role each with its own marker.</li>
 * </ul>
 * The engine names its model's template ({@code ModelInfo.chatTemplate}); a Hugging Face
 * checkpoint's is recognised from its {@code tokenizer_config.json}.
 */
public interface ChatTemplate {

  /** llama2.c's {@code [INST]} format; the default. */
  String LLAMA2 = "llama2";
  /** Role-prefixed lines. */
  String PLAIN = "plain";
  /** DeepSeek-V3's {@code <｜User｜>}/{@code <｜Assistant｜>} format. */
  String DEEPSEEK_V3 = "deepseek-v3";

  /** The name it is registered under. */
  String name();

  /**
   * The prompt for {@code messages}, ready for the model to write the next assistant message.
   *
   * @throws IllegalArgumentException when the template cannot render this conversation
   */
  String render(List<ChatMessage> messages);

  /**
   * The template registered under {@code name}.
   *
   * @throws IllegalArgumentException for an unknown name (the message lists the known ones)
   */
  static ChatTemplate forName(String name) {
    return ChatTemplates.forName(name);
  }

  /** The names of the registered templates. */
  static List<String> names() {
    return ChatTemplates.names();
  }
}
