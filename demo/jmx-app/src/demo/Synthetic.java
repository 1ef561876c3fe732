package demo;

import java.util.concurrent.atomic.AtomicLong;
import javax.management.Attribute;
import javax.management.AttributeList;
import javax.management.AttributeNotFoundException;
import javax.management.DynamicMBean;
import javax.management.MBeanAttributeInfo;
import javax.management.MBeanInfo;

/**
 * A dynamic MBean with a configurable number of numeric attributes, for the scrape benchmark
 * (thousands of attributes without writing thousands of getters). With {@code moving}, every read
 * returns a new value, the worst case for a scraper's caches.
 */
public final class Synthetic implements DynamicMBean {
    private final int index;
    private final MBeanInfo info;
    private final boolean moving;
    private final AtomicLong reads = new AtomicLong();

    public Synthetic(int index, int attributes, boolean moving) {
        this.index = index;
        this.moving = moving;
        MBeanAttributeInfo[] attrs = new MBeanAttributeInfo[attributes];
        for (int i = 0; i < attributes; i++) {
            String type = i % 2 == 0 ? "long" : "double";
            attrs[i] = new MBeanAttributeInfo(name(i), type, "Synthetic value " + i, true, false, false);
        }
        info = new MBeanInfo(Synthetic.class.getName(), "Synthetic bean", attrs, null, null, null);
    }

    private static String name(int i) {
        return (i % 2 == 0 ? "Counter" : "Gauge") + i;
    }

    @Override
    public Object getAttribute(String attribute) throws AttributeNotFoundException {
        if (!attribute.startsWith("Counter") && !attribute.startsWith("Gauge")) {
            throw new AttributeNotFoundException(attribute);
        }
        int i;
        try {
            i = Integer.parseInt(attribute.replaceFirst("^(Counter|Gauge)", ""));
        } catch (NumberFormatException e) {
            throw new AttributeNotFoundException(attribute);
        }
        if (i >= info.getAttributes().length) {
            throw new AttributeNotFoundException(attribute);
        }
        long step = moving ? reads.incrementAndGet() : 0;
        if (i % 2 == 0) {
            return (long) index * 1000 + i + step;
        }
        return index + i / 100.0 + step;
    }

    @Override
    public AttributeList getAttributes(String[] attributes) {
        AttributeList list = new AttributeList();
        for (String a : attributes) {
            try {
                list.add(new Attribute(a, getAttribute(a)));
            } catch (AttributeNotFoundException e) {
                // Missing attributes are left out, as the JMX contract allows.
            }
        }
        return list;
    }

    @Override
    public void setAttribute(Attribute attribute) {
        throw new UnsupportedOperationException("read-only");
    }

    @Override
    public AttributeList setAttributes(AttributeList attributes) {
        return new AttributeList();
    }

    @Override
    public Object invoke(String actionName, Object[] params, String[] signature) {
        throw new UnsupportedOperationException("no operations");
    }

    @Override
    public MBeanInfo getMBeanInfo() {
        return info;
    }
}
