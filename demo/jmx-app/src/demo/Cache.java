package demo;

import javax.management.openmbean.CompositeData;
import javax.management.openmbean.CompositeDataSupport;
import javax.management.openmbean.CompositeType;
import javax.management.openmbean.OpenDataException;
import javax.management.openmbean.OpenType;
import javax.management.openmbean.SimpleType;
import javax.management.openmbean.TabularData;
import javax.management.openmbean.TabularDataSupport;
import javax.management.openmbean.TabularType;

/** Composite and tabular attributes, the shapes jmx_exporter flattens into names and labels. */
public final class Cache implements CacheMBean {
    private static final CompositeType STATS;
    private static final CompositeType SHARD;
    private static final TabularType SHARDS;

    static {
        try {
            STATS = new CompositeType(
                    "CacheStats", "Cache statistics",
                    new String[] {"hits", "misses", "hitRatio"},
                    new String[] {"Hits", "Misses", "Hit ratio"},
                    new OpenType<?>[] {SimpleType.LONG, SimpleType.LONG, SimpleType.DOUBLE});
            SHARD = new CompositeType(
                    "Shard", "One shard",
                    new String[] {"shard", "size", "evictions"},
                    new String[] {"Shard id", "Entries", "Evictions"},
                    new OpenType<?>[] {SimpleType.STRING, SimpleType.LONG, SimpleType.LONG});
            SHARDS = new TabularType("Shards", "Per-shard sizes", SHARD, new String[] {"shard"});
        } catch (OpenDataException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @Override
    public CompositeData getStats() {
        try {
            return new CompositeDataSupport(
                    STATS,
                    new String[] {"hits", "misses", "hitRatio"},
                    new Object[] {90L, 10L, 0.9});
        } catch (OpenDataException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public long getBroken() {
        throw new UnsupportedOperationException("this attribute always fails");
    }

    @Override
    public TabularData getShards() {
        TabularDataSupport table = new TabularDataSupport(SHARDS);
        try {
            table.put(new CompositeDataSupport(
                    SHARD, new String[] {"shard", "size", "evictions"}, new Object[] {"s1", 100L, 1L}));
            table.put(new CompositeDataSupport(
                    SHARD, new String[] {"shard", "size", "evictions"}, new Object[] {"s2", 200L, 2L}));
        } catch (OpenDataException e) {
            throw new IllegalStateException(e);
        }
        return table;
    }

    @Override
    public int getCapacity() {
        return 1000;
    }
}
