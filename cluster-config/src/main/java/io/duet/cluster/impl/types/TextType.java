package io.duet.cluster.impl.types;

/** A non-empty string; surrounding blanks are dropped. */
public final class TextType extends DescribedType<String> {

  public static final TextType INSTANCE = new TextType();

  private TextType() {
    super("string", "", "a non-empty string");
  }

  @Override
  public String decode(Object raw) {
    String text = RawValues.text(raw);
    if (text == null || text.isEmpty()) {
      throw invalid();
    }
    return text;
  }

  @Override
  public Object encode(String value) {
    return value;
  }
}
